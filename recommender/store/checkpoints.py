"""SQLite's write-ahead log checkpointed by a background thread, not by the commit that fills it.

By default SQLite checkpoints inside the commit that brings the log to 1,000 pages, and a
checkpoint ends with an fsync: on a slow disk that one commit takes a few hundred milliseconds
(measured on this project's CI machine: up to 0.5 s, against 0.2 ms for a plain commit). In the
feedback endpoint every click queued behind it waits as long, and `ingest` waited ~1 s on the
checkpoint of its 100,000-paper commit. Those two therefore turn automatic checkpoints off on
their own connections and checkpoint every second from a thread (PASSIVE: it waits for no
reader or writer), the endpoint while it serves and `ingest` while it refits the model. Other
processes keep checkpointing as before; PostgreSQL needs none of this.
"""

from __future__ import annotations

import logging
import threading

from recommender.store.store import Store

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 1.0


class BackgroundCheckpoints:
    def __init__(self, store: Store, interval: float = INTERVAL_SECONDS):
        self.store, self.interval = store, interval
        self.last: tuple[int, int, int] | None = None  # the last checkpoint's (busy, frames, checkpointed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundCheckpoints:
        if self.store.sqlite_path is not None:
            self.store.stop_automatic_checkpoints()
            self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.last = self.store.checkpoint()
            except Exception as exc:  # noqa: BLE001 - the next round tries again; SQLite also checkpoints on close
                log.warning("checkpoint of the write-ahead log failed: %s", exc)
