"""The database handles the daemon's schedule ticks still hold themselves (``app.daemon`` and
``app.schedules``): the store, the reader schedules and settings and the outbox's claims. Every other
shell reaches the database through ``recommender.pipeline.api``; tests/test_structure.py
names the two modules allowed here."""

from __future__ import annotations

from recommender.store import Store
from recommender.store.daemon_lock import DaemonLock
from recommender.store.lease_owners import new_owner
from recommender.store.outbox import Outbox
from recommender.store.reader_settings import ReaderSettings
from recommender.store.schedule import NewSchedule, ReaderSchedule, Settled

__all__ = ["DaemonLock", "NewSchedule", "Outbox", "ReaderSchedule", "ReaderSettings", "Settled", "Store", "new_owner"]
