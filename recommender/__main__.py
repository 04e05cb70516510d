from recommender.warm_client import main

main()
