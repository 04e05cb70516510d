"""Group commit: small writes from many threads committed together by one writer thread.

A web worker answering many clicks at once would otherwise run one short write transaction
per click, one after another behind SQLite's single writer. Here each request hands its write
over and waits; the writer takes everything queued so far and commits it in one
transaction, so a click is still answered only once it is durably recorded, but a busy second
costs a few commits instead of hundreds.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_BATCH = 256


class GroupCommit(Generic[Item, Result]):
    """``enqueue`` returns a future settled once ``write_batch`` (one transaction over a list of items, returning
    one result per item, in order) has committed the item with whatever else was queued."""

    def __init__(self, write_batch: Callable[[Sequence[Item]], list[Result]], max_batch: int = MAX_BATCH):
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | None] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def enqueue(self, item: Item) -> Future[Result]:
        """The item's result once committed, as a future (``asyncio.wrap_future`` awaits it)."""
        future: Future[Result] = Future()
        self._ensure_started()
        self._queue.put((item, future))
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        with self._start_lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self._write_batch([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # One failing item must not fail the others: each gets its own transaction.
            log.warning("a group of %d writes failed (%s); retrying them one at a time", len(batch), exc)
            for entry in batch:
                self._commit([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
