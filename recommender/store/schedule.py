"""Readers' schedules and the readers whose run is owed, in bulk: a tick reads only the readers
due (an index on the next run), enqueues them with one statement and moves their next run on
with one statement per schedule rule (readers sharing a rule share their times); a run is
claimed in shards under a lease and recorded with one statement for the whole shard. None of
it reads or writes one row per reader per round trip."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)

from recommender.store.lease_owners import owner_is_dead
from recommender.store.schema import DueReaderRow, ScheduleStateRow, UserRow
from recommender.store.store import Store, chunks

Row = ScheduleStateRow
ANALYZE_FROM = 1_000  # readers enqueued by one tick from which PostgreSQL's statistics are refreshed
# What a run's shards read by reader and do not write. Not the digests, their entries or the
# profiles: they grow during the run, and statistics taken while they are empty plan each
# foreign-key check of a new entry as a read of every digest (0.01 -> 0.1 ms an entry at 10,000).
RUN_TABLES = ("due_readers", "users", "reader_settings", "stars", "feedback", "signal_generations")


@dataclass(frozen=True)
class StoredSchedule:
    rule: str
    next_run_at: datetime | None
    last_run_at: datetime


@dataclass(frozen=True)
class NewSchedule:
    """What to store for one reader whose rule is new or changed."""

    user_id: int
    rule: str
    next_run_at: datetime | None
    last_run_at: datetime


@dataclass(frozen=True)
class Settled:
    """What a due group of readers (one rule, one stored next run) is owed: a run at ``due``
    (None: nothing, the runs were missed beyond the grace period), then ``next`` after it."""

    due: datetime | None
    next: datetime | None


# (rule, stored next run) -> what that group is owed; None leaves the group as it is.
Settle = Callable[[str, datetime], Settled | None]


class ReaderSchedule:
    def __init__(self, store: Store):
        self.store = store

    # -- the schedules --------------------------------------------------------------------------
    def stored(self) -> dict[int, StoredSchedule]:
        """Every reader's stored schedule, in one query (start-up and reload only)."""
        with self.store.read() as conn:
            rows = conn.execute(select(Row.user_id, Row.rule, Row.next_run_at, Row.last_run_at))
            return {r.user_id: StoredSchedule(r.rule, r.next_run_at, r.last_run_at) for r in rows}

    def save(self, schedules: Sequence[NewSchedule], exists: Callable[[int], bool]) -> None:
        """Store new or changed schedules: one executemany of updates, one of inserts."""
        changed = [{"b_user": s.user_id, "b_rule": s.rule, "b_next": s.next_run_at, "b_last": s.last_run_at}
                   for s in schedules if exists(s.user_id)]
        fresh = [{"user_id": s.user_id, "rule": s.rule, "next_run_at": s.next_run_at, "last_run_at": s.last_run_at}
                 for s in schedules if not exists(s.user_id)]
        with self.store.write() as conn:
            if changed:
                conn.execute(update(Row).where(Row.user_id == bindparam("b_user"))
                             .values(rule=bindparam("b_rule"), next_run_at=bindparam("b_next"),
                                     last_run_at=bindparam("b_last")), changed)
            if fresh:
                conn.execute(insert(Row), fresh)

    def unschedule(self, user_ids: Iterable[int]) -> None:
        """Readers no longer configured: no next run (their last run is kept)."""
        with self.store.write() as conn:
            for chunk in chunks(sorted(user_ids), 5000):
                conn.execute(update(Row).where(Row.user_id.in_(chunk)).values(rule="", next_run_at=None))

    def next_runs(self) -> dict[int, datetime]:
        """user id -> next run, for the readers that have one."""
        with self.store.read() as conn:
            rows = conn.execute(select(Row.user_id, Row.next_run_at).where(Row.next_run_at.is_not(None)))
            return {r.user_id: r.next_run_at for r in rows}

    def first_due(self) -> datetime | None:
        """The earliest next run of any reader (read from the index)."""
        with self.store.read() as conn:
            return conn.execute(select(func.min(Row.next_run_at))).scalar()

    def last_runs(self, user_ids: Sequence[int]) -> dict[int, datetime]:
        found: dict[int, datetime] = {}
        with self.store.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                rows = conn.execute(select(Row.user_id, Row.last_run_at).where(Row.user_id.in_(chunk)))
                found.update({r.user_id: r.last_run_at for r in rows})
        return found

    # -- a tick ---------------------------------------------------------------------------------
    def tick(self, now: datetime, settle: Settle, enqueue: bool = True) -> tuple[int, list[tuple[str, datetime, int, Settled]]]:
        """In one transaction: settle each due group (``settle`` says what a group sharing a rule
        and a next run is owed after downtime), then, with ``enqueue``, enqueue every reader
        owed a run (one statement) and move the groups' next runs on. Returns (readers
        enqueued, the groups whose runs were skipped or coalesced, with their sizes)."""
        with self.store.write() as conn:
            groups = conn.execute(select(Row.rule, Row.next_run_at, func.count())
                                  .where(Row.next_run_at <= now).group_by(Row.rule, Row.next_run_at)).all()
            changed: list[tuple[str, datetime, int, Settled]] = []
            moves: list[dict[str, object]] = []
            rules: list[str] = []
            for rule, at, size in groups:
                owed = settle(rule, at) if at is not None else None
                if owed is None or at is None:
                    continue
                if owed.due != at:
                    changed.append((rule, at, size, owed))
                if owed.due is None:  # missed beyond the grace period: skipped, recorded as processed
                    conn.execute(update(Row).where(Row.rule == rule, Row.next_run_at == at)
                                 .values(next_run_at=owed.next, last_run_at=now))
                    continue
                if owed.due != at:
                    conn.execute(update(Row).where(Row.rule == rule, Row.next_run_at == at).values(next_run_at=owed.due))
                if enqueue:
                    moves.append({"b_rule": rule, "b_at": owed.due, "b_next": owed.next})
                    rules.append(rule)
            enqueued = self._enqueue(conn, now, rules) if moves else 0
            if moves:
                conn.execute(update(Row).where(Row.rule == bindparam("b_rule"), Row.next_run_at == bindparam("b_at"))
                             .values(next_run_at=bindparam("b_next")), moves)
        if enqueued >= ANALYZE_FROM and self.store.engine.dialect.name == "postgresql":
            # Once a run, the statistics of what its shards read: the owed readers just enqueued,
            # and tables that grew since (autovacuum, where it runs at all, looks later).
            with self.store.write() as conn:
                conn.execute(text(f"ANALYZE {', '.join(RUN_TABLES)}"))
        return enqueued, changed

    @staticmethod
    def _enqueue(conn: Connection, now: datetime, rules: list[str]) -> int:
        """One INSERT ... SELECT of every settled due reader (readers already owed a run stay once)."""
        waiting = select(DueReaderRow.user_id).where(DueReaderRow.user_id == Row.user_id).exists()
        source = (select(Row.user_id, Row.next_run_at, literal(""))
                  .where(Row.next_run_at <= now, Row.rule.in_(rules), ~waiting))
        stmt = insert(DueReaderRow).from_select(["user_id", "due_at", "lease_owner"], source)
        return len(conn.execute(stmt.returning(DueReaderRow.user_id)).all())  # (rowcount: -1 on psycopg)

    def run_now(self, user_ids: Sequence[int], now: datetime, next_runs: dict[int, datetime]) -> None:
        """Owe these readers a run now (`run_user`); ``next_runs`` moves on the next runs of those
        whose next run this run stands for."""
        with self.store.write() as conn:
            waiting = {uid for chunk in chunks(list(user_ids), 5000) for uid in conn.execute(
                select(DueReaderRow.user_id).where(DueReaderRow.user_id.in_(chunk))).scalars()}
            fresh = [{"user_id": uid, "due_at": now, "lease_owner": ""} for uid in user_ids if uid not in waiting]
            if fresh:
                conn.execute(insert(DueReaderRow), fresh)
            if next_runs:
                conn.execute(update(Row).where(Row.user_id == bindparam("b_user"), Row.next_run_at <= now)
                             .values(next_run_at=bindparam("b_next")),
                             [{"b_user": uid, "b_next": when} for uid, when in next_runs.items()])

    # -- shards of due readers ------------------------------------------------------------------
    def claim(self, owner: str, lease: timedelta, limit: int, now: datetime) -> list[tuple[int, str]]:
        """Take up to ``limit`` owed readers whose lease is free, expired or held by a dead
        process of this host: (user id, email), oldest due first. PostgreSQL skips rows
        another claimer holds."""
        d = DueReaderRow
        with self.store.write() as conn:
            holders = conn.execute(select(d.lease_owner).distinct().where(d.lease_owner > "", d.lease_until >= now))
            dead = [h for h in holders.scalars() if owner_is_dead(h)]
            stmt = (select(d.user_id).where(or_(d.lease_until.is_(None), d.lease_until < now, d.lease_owner.in_(dead)))
                    .order_by(d.due_at, d.user_id).limit(limit))
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            ids = list(conn.execute(stmt).scalars())
            if not ids:
                return []
            conn.execute(update(d).where(d.user_id.in_(ids)).values(lease_owner=owner, lease_until=now + lease))
            rows = conn.execute(select(UserRow.id, UserRow.email).where(UserRow.id.in_(ids)).order_by(UserRow.id))
            return [(r.id, r.email) for r in rows]

    def finish(self, owner: str, finished: datetime) -> int:
        """Record the run of every reader this owner holds (one statement) and drop them from
        the owed readers; returns how many."""
        held = select(DueReaderRow.user_id).where(DueReaderRow.lease_owner == owner)
        with self.store.write() as conn:
            conn.execute(update(Row).where(Row.user_id.in_(held)).values(last_run_at=finished))
            return conn.execute(delete(DueReaderRow).where(DueReaderRow.lease_owner == owner)).rowcount

    def drop(self, user_ids: Sequence[int]) -> None:
        """Owed readers that are no longer configured: nothing to run."""
        with self.store.write() as conn:
            for chunk in chunks(list(user_ids), 5000):
                conn.execute(delete(DueReaderRow).where(DueReaderRow.user_id.in_(chunk)))

    def owed(self) -> int:
        with self.store.read() as conn:
            return conn.execute(select(func.count()).select_from(DueReaderRow)).scalar_one()
