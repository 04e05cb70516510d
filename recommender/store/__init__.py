"""The store: the only code that touches the database."""

from recommender.store.store import IngestResult, Store

__all__ = ["IngestResult", "Store"]
