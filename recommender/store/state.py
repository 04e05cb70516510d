"""Small bits of daemon state: per-source fetch state and per-user last scheduled run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from recommender.store.schema import ScheduleStateRow, SourceStateRow
from recommender.store.store import Store


@dataclass(frozen=True)
class SourceState:
    name: str
    etag: str = ""
    last_modified: str = ""
    fetched_at: datetime | None = None
    last_error: str = ""
    failures: int = 0  # fetch runs failed in a row (0 once one works)


class DaemonState:
    def __init__(self, store: Store):
        self.store = store

    def source(self, name: str) -> SourceState:
        with self.store.read() as conn:
            row = conn.execute(select(SourceStateRow).where(SourceStateRow.name == name)).first()
        if row is None:
            return SourceState(name)
        return SourceState(row.name, row.etag, row.last_modified, row.fetched_at, row.last_error, row.failures or 0)

    def sources(self) -> list[SourceState]:
        with self.store.read() as conn:
            rows = conn.execute(select(SourceStateRow).order_by(SourceStateRow.name)).all()
        return [SourceState(r.name, r.etag, r.last_modified, r.fetched_at, r.last_error, r.failures or 0) for r in rows]

    def save_source(self, state: SourceState) -> None:
        values = {"etag": state.etag, "last_modified": state.last_modified, "fetched_at": state.fetched_at,
                  "last_error": state.last_error[:1000], "failures": state.failures}
        with self.store.write() as conn:
            if not conn.execute(update(SourceStateRow).where(SourceStateRow.name == state.name).values(**values)).rowcount:
                conn.execute(insert(SourceStateRow).values(name=state.name, **values))

    def last_run(self, user_id: int) -> datetime | None:
        with self.store.read() as conn:
            return conn.execute(select(ScheduleStateRow.last_run_at).where(ScheduleStateRow.user_id == user_id)).scalar()

    def set_last_run(self, user_id: int, when: datetime) -> None:
        with self.store.write() as conn:
            if not conn.execute(update(ScheduleStateRow).where(ScheduleStateRow.user_id == user_id)
                                .values(last_run_at=when)).rowcount:
                conn.execute(insert(ScheduleStateRow).values(user_id=user_id, last_run_at=when))
