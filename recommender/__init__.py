"""recommender: emails each subscriber the few new research papers they will want to read."""

__version__ = "0.1.0"

from recommender.base.errors import RecommenderError  # noqa: E402

__all__ = ["RecommenderError", "__version__"]
