"""Names the light start-up code and the config share: environment variables and the default
config file. Kept apart so `warm_client` (the console script) need not import `config`."""

CONFIG_ENV = "RECOMMENDER_CONFIG"
DATABASE_URL_ENV = "RECOMMENDER_DATABASE_URL"
DEFAULT_CONFIG_NAME = "config.toml"
JOBS_ENV = "RECOMMENDER_JOBS"
