"""Store: every read and write of the database goes through this class, made of one part per
subject (see the modules beside this one)."""

from __future__ import annotations

from recommender.store.database import (
    Database,
    WriterLock,
    busy_timeout_ms,
    chunks,
    set_meta,
    utcnow,
)
from recommender.store.models import ModelRows
from recommender.store.papers import BatchInfo, IngestResult, PaperRows
from recommender.store.readers import ReaderRows

__all__ = ["BatchInfo", "Database", "IngestResult", "PaperRows", "Store", "WriterLock", "busy_timeout_ms", "chunks", "set_meta", "utcnow"]


class Store(ReaderRows, ModelRows):
    """The whole store."""
