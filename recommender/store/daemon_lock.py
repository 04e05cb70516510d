"""One daemon per database: `recommender run` holds this lock for as long as it runs, so a
second one on the same database is refused at once instead of sending every digest twice.

SQLite: an exclusive ``flock`` of a file beside the database (``<database>-daemon``, holding
the owner's process id); the kernel releases it when the process ends, however it ends.
PostgreSQL: a session advisory lock on a connection of its own, released when that
connection closes (the process ending closes it too). There a second daemon may instead wait
as a standby (`run --standby`): it takes over when the first one's session ends (its process
died: at once; its host vanished: within the keepalive time set on the session).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import text

from recommender.base.config import masked_url
from recommender.base.errors import RecommenderError
from recommender.store.database import Database

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock; README says to run one daemon
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
STANDBY_POLL_SECONDS = 5.0
# The server drops a vanished host's session (and lock) after about idle + interval * count.
KEEPALIVE = {"tcp_keepalives_idle": 15, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}
# pg_try_advisory_lock's key: any fixed 64-bit number that no other code of ours uses.
ADVISORY_KEY = 0x7265636F6D6D656E  # "recommen"


class DaemonRunning(RecommenderError):
    """Another daemon holds the lock of this database."""


class DaemonLock:
    """Taken by ``acquire`` (or raises ``DaemonRunning``), given back by ``release``."""

    def __init__(self, database: Database):
        self.database = database
        self._fd: int | None = None
        self._connection: Any = None

    def acquire(self, standby: threading.Event | None = None) -> bool:
        """Take the lock, or raise ``DaemonRunning``; with ``standby`` (PostgreSQL) wait for it
        instead until that event is set (then False)."""
        path = self.database.sqlite_path
        if path is not None:
            self._lock_file(path)
        elif self.database.engine.dialect.name == "postgresql":
            return self._lock_advisory(standby)
        return True

    def _lock_file(self, database: Path) -> None:
        if fcntl is None:
            return
        path = database.with_name(database.name + "-daemon")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise DaemonRunning(_refusal(str(database), f"process {owner}" if owner.isdigit() else "")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def _lock_advisory(self, standby: threading.Event | None) -> bool:
        connection = self.database.engine.connect()
        for name, value in KEEPALIVE.items():
            connection.execute(text(f"SET {name} = {int(value)}"))  # constant names and numbers
        waiting = False
        while True:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar()
            connection.commit()  # the session lock outlives the transaction; an open one would hold back VACUUM
            if taken:
                break
            if standby is None:
                connection.close()
                url = masked_url(self.database.engine.url.render_as_string(hide_password=False))
                raise DaemonRunning(_refusal(url, ""))
            if not waiting:
                log.info("standby: another `recommender run` schedules this database; taking over when it stops")
                waiting = True
            if standby.wait(STANDBY_POLL_SECONDS):
                connection.close()
                return False
        if waiting:
            log.info("taking over the schedule: the other daemon is gone")
        self._connection = connection
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._connection is not None:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            self._connection.close()
            self._connection = None


def _refusal(database: str, owner: str) -> str:
    by = f" ({owner})" if owner else ""
    return (f"another `recommender run` is already running on {database}{by}: only one daemon may run per "
            "database; stop that one first")
