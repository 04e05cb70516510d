"""One scheduler per database. On PostgreSQL a session advisory lock, held on a connection of
its own for the daemon's life: a second `recommender run` waits as a standby and takes over
when the first one's session ends (its process died: the server ends the session at once; its
host vanished: within the keepalive time set on that session). On SQLite, where every process
shares one machine, a lock file beside the database: a second daemon is refused."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import Connection, text

from recommender.base.errors import RecommenderError
from recommender.store.store import Store

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no second-daemon check on SQLite
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x7265636F6D6D  # "recomm": the scheduler's lock among the database's advisory locks
STANDBY_POLL_SECONDS = 5.0
# The server drops a vanished host's session (and lock) after about idle + interval * count.
KEEPALIVE = {"tcp_keepalives_idle": 15, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


class DaemonLock:
    def __init__(self, store: Store, poll_seconds: float = STANDBY_POLL_SECONDS):
        self.store = store
        self.poll_seconds = poll_seconds
        self._conn: Connection | None = None
        self._fd: int | None = None

    def acquire(self, stopped: threading.Event) -> bool:
        """Hold the lock: at once, or (PostgreSQL) once the daemon holding it is gone. False if
        ``stopped`` was set while waiting; RecommenderError when SQLite's daemon runs already."""
        if self.store.engine.dialect.name != "postgresql":
            self._lock_file()
            return True
        conn = self.store.engine.connect()
        for name, value in KEEPALIVE.items():
            conn.execute(text(f"SET {name} = {int(value)}"))  # nosec B608 - constant names and numbers
        waiting = False
        while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar():
            conn.commit()
            if not waiting:
                log.info("standby: another `recommender run` schedules this database; taking over when it stops")
                waiting = True
            if stopped.wait(self.poll_seconds):
                conn.close()
                return False
        conn.commit()
        if waiting:
            log.info("taking over the schedule: the other daemon is gone")
        self._conn = conn
        return True

    def _lock_file(self) -> None:
        path = self.store.sqlite_path
        if path is None or fcntl is None:
            return
        self._fd = os.open(path.with_name(path.name + "-daemon"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise RecommenderError(f"{path}: another `recommender run` is already running on this database") from None

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session, and the advisory lock with it
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.release()
