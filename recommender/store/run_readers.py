"""The readers of one run, registered in the database so that the run's statements name them
by the run (a subquery) instead of listing their ids: PostgreSQL takes at most 65,535
parameters in a statement, and a list of every reader's id in each claim costs more the more
readers a run has. A run's rows go when it ends; those of a run whose process was killed go
at the next run a day later (run ids begin with their UTC start, so they sort by age)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType

from sqlalchemy import Select, delete, insert, select, text

from recommender.store.schema import RunReaderRow
from recommender.store.store import Store, chunks, utcnow

STALE = timedelta(days=1)
ANALYZE_ABOVE = 1_000  # readers in a run beyond which PostgreSQL's statistics of the table are renewed


def run_id_prefix(at_age: timedelta = timedelta(0)) -> str:
    return f"{utcnow() - at_age:%Y%m%dT%H%M%S}"


class RunReaders:
    """``with RunReaders(store, ids) as readers:`` registers the ids; ``readers`` is a subquery
    of them to pass wherever a list of reader ids went."""

    def __init__(self, store: Store, user_ids: Sequence[int]):
        self.store = store
        self.user_ids = list(dict.fromkeys(user_ids))
        self.run_id = f"{run_id_prefix()}-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> Select[int]:
        with self.store.write() as conn:
            conn.execute(delete(RunReaderRow).where(RunReaderRow.run_id < run_id_prefix(STALE)))
            for chunk in chunks(self.user_ids, 10_000):
                conn.execute(insert(RunReaderRow), [{"run_id": self.run_id, "user_id": uid} for uid in chunk])
        if self.store.engine.dialect.name == "postgresql" and len(self.user_ids) > ANALYZE_ABOVE:
            # Statistics first: planned for the few rows it last counted, each claim joined every
            # pending digest of the run (250 ms at 70,000 readers instead of 0.4 ms).
            with self.store.write() as conn:
                conn.execute(text("ANALYZE run_readers"))
        return select(RunReaderRow.user_id).where(RunReaderRow.run_id == self.run_id)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with self.store.write() as conn:
            conn.execute(delete(RunReaderRow).where(RunReaderRow.run_id == self.run_id))
