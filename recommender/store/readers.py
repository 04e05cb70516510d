"""Readers: users, their stars, and the signals (stars and clicks) profiles are built from."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout alone orders writers across processes
    fcntl = None  # type: ignore[assignment]

from recommender.base.domain import Paper, ReaderIds, Signal
from recommender.store.choices import effective
from recommender.store.database import chunks, set_meta, utcnow
from recommender.store.papers import PaperRows, _paper
from recommender.store.schema import (
    DigestEntryRow,
    DigestRow,
    FeedbackRow,
    MetaRow,
    PaperRow,
    StarRow,
    UserRow,
)

STAR_TOTALS = "star_totals"  # meta key: "stars readers" as last counted


class StarTotals(NamedTuple):
    stars: int
    readers: int  # readers with any star


FEW_EMAILS = 1000  # up to this many emails are looked up by name; more read the users table once


class ReaderRows(PaperRows):
    """Users, stars and signals; stars name papers, so papers come with them."""

    # -- users ------------------------------------------------------------------------------
    def sync_users(self, emails: Iterable[str]) -> ReaderIds:
        """Make sure every configured email has a row; returns email (lower-case) -> id. A few
        emails are looked up by themselves; many (a whole config) with one read of the table."""
        wanted = {email.lower() for email in emails}
        with self.read() as conn:  # usually all there: no write lock taken then
            existing = self._user_ids(conn, wanted)
        if wanted - set(existing):
            with self.write() as conn:
                existing = self._user_ids(conn, wanted)
                missing = sorted(wanted - set(existing))
                if missing:
                    now = utcnow()
                    conn.execute(insert(UserRow), [{"email": e, "created_at": now} for e in missing])
                    existing.update(self._user_ids(conn, set(missing)))
        return ReaderIds({email: existing[email] for email in wanted})

    @staticmethod
    def _user_ids(conn: Connection, emails: set[str]) -> dict[str, int]:
        if len(emails) > FEW_EMAILS:
            rows = conn.execute(select(UserRow.email, UserRow.id))
            return {row.email: row.id for row in rows if row.email in emails}
        found: dict[str, int] = {}
        for chunk in chunks(sorted(emails), FEW_EMAILS):
            found.update({row.email: row.id for row in conn.execute(
                select(UserRow.email, UserRow.id).where(UserRow.email.in_(chunk)))})
        return found

    def user_id(self, email: str) -> int:
        return self.sync_users([email]).of(email)

    def user_ids(self) -> set[int]:
        with self.read() as conn:
            return set(conn.execute(select(UserRow.id)).scalars())

    def emails(self, user_ids: Sequence[int]) -> dict[int, str]:
        """User id -> email of these readers (only their rows are read)."""
        found: dict[int, str] = {}
        with self.read() as conn:
            for chunk in chunks(sorted(set(user_ids)), FEW_EMAILS):
                found.update({uid: email for uid, email in conn.execute(
                    select(UserRow.id, UserRow.email).where(UserRow.id.in_(chunk)))})
        return found

    def reader_count(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(UserRow)).scalar_one())

    def reader_pages(self, size: int) -> Iterator[list[tuple[int, str]]]:
        """Every stored reader as (user id, email), ``size`` at a time in id order (one page
        read per page: memory flat in the number of readers)."""
        after = 0
        while True:
            with self.read() as conn:
                page = [(uid, email) for uid, email in conn.execute(
                    select(UserRow.id, UserRow.email).where(UserRow.id > after).order_by(UserRow.id).limit(size))]
            if not page:
                return
            yield page
            after = page[-1][0]

    def user_rows(self) -> list[Any]:
        with self.read() as conn:
            return list(conn.execute(select(UserRow).order_by(UserRow.email)))

    # -- stars ------------------------------------------------------------------------------
    def star(self, user_id: int, paper_ids: Sequence[str], origin: str = "cli", topic: str | None = None) -> int:
        """Star papers (already-starred ones are left alone, or moved to ``topic`` when one is
        given); returns how many were new."""
        with self.write() as conn:
            return self._star(conn, user_id, paper_ids, origin, topic)

    def _star(self, conn: Connection, user_id: int, paper_ids: Sequence[str], origin: str,
              topic: str | None = None) -> int:
        have = set(conn.execute(select(StarRow.paper_id).where(StarRow.user_id == user_id)).scalars())
        wanted = list(dict.fromkeys(paper_ids))
        fresh = [pid for pid in wanted if pid not in have]
        if fresh:
            now = utcnow()
            conn.execute(insert(StarRow), [
                {"user_id": user_id, "paper_id": pid, "origin": origin, "created_at": now, "topic": topic}
                for pid in fresh
            ])
        moved = [pid for pid in wanted if pid in have]
        if topic is not None and moved:
            conn.execute(update(StarRow).where(StarRow.user_id == user_id, StarRow.paper_id.in_(moved),
                                               StarRow.topic.is_distinct_from(topic)).values(topic=topic))
        return len(fresh)

    def star_many(self, pairs: Sequence[tuple[int, str]], origin: str, topics: Sequence[str | None] = ()) -> int:
        """Star (user id, paper id) pairs in one transaction, each in its topic when ``topics``
        names them (one per pair); returns how many were new."""
        added = 0
        by_user: dict[tuple[int, str | None], list[str]] = {}
        for n, (user_id, paper_id) in enumerate(pairs):
            by_user.setdefault((user_id, topics[n] if topics else None), []).append(paper_id)
        with self.write() as conn:
            for (user_id, topic), ids in by_user.items():
                added += self._star(conn, user_id, ids, origin, topic)
        return added

    def unstar(self, user_id: int, paper_ids: Sequence[str], topic: str | None = None) -> int:
        """Remove these stars (papers named by id, alias or arXiv id; with ``topic``, only those
        in that topic); returns how many went."""
        ids = list(set(self.resolve_ids(paper_ids).values()))
        with self.write() as conn:
            query = delete(StarRow).where(StarRow.user_id == user_id, StarRow.paper_id.in_(ids))
            if topic is not None:
                query = query.where(StarRow.topic == topic)
            return conn.execute(query).rowcount

    def stars(self, user_id: int, topic: str | None = None) -> list[tuple[Paper, datetime]]:
        """A reader's starred papers, oldest first; with ``topic``, those in that topic."""
        query = (select(PaperRow, StarRow.created_at).join(StarRow, StarRow.paper_id == PaperRow.id)
                 .where(StarRow.user_id == user_id).order_by(StarRow.created_at, PaperRow.id))
        if topic is not None:
            query = query.where(StarRow.topic == topic)
        with self.read() as conn:
            rows = conn.execute(query).all()
        return [(_paper(r), r.created_at) for r in rows]

    def star_topics(self, user_id: int) -> dict[str, str]:
        """paper id -> topic of a reader's stars that carry one."""
        with self.read() as conn:
            rows = conn.execute(select(StarRow.paper_id, StarRow.topic)
                                .where(StarRow.user_id == user_id, StarRow.topic.is_not(None)))
            return {r.paper_id: r.topic for r in rows}

    def topic_signals(self, user_id: int) -> list[tuple[Signal, str | None]]:
        """A reader's stars and clicks, oldest first, each with its topic (None: untopiced)."""
        found: list[tuple[Signal, str | None]] = []
        with self.read() as conn:
            for paper_id, at, topic in conn.execute(select(StarRow.paper_id, StarRow.created_at, StarRow.topic)
                                                    .where(StarRow.user_id == user_id)
                                                    .order_by(StarRow.created_at, StarRow.paper_id)):
                found.append((Signal(paper_id, "star", at), topic))
            clicks = conn.execute(
                select(FeedbackRow.paper_id, FeedbackRow.action, FeedbackRow.created_at, FeedbackRow.topic)
                .where(FeedbackRow.user_id == user_id).order_by(FeedbackRow.created_at, FeedbackRow.id)).all()
            for (paper_id, action, at, topic), stands in zip(clicks, effective([c[:2] for c in clicks]), strict=True):
                if stands:
                    found.append((Signal(paper_id, action, at), topic))
        return found

    def star_counts(self) -> dict[int, int]:
        """user id -> how many papers they starred (users without stars are absent)."""
        with self.read() as conn:
            rows = conn.execute(select(StarRow.user_id, func.count()).group_by(StarRow.user_id))
            return {user_id: count for user_id, count in rows}

    def starred_ids(self, user_id: int) -> dict[str, datetime]:
        with self.read() as conn:
            rows = conn.execute(select(StarRow.paper_id, StarRow.created_at).where(StarRow.user_id == user_id))
            return {r.paper_id: r.created_at for r in rows}

    def interactions(self) -> Iterator[tuple[int, str]]:
        """Every (user id, paper id) star: what all subscribers saved, for collaborative signal;
        read a batch of rows at a time as it is consumed (its reader keeps it compactly)."""
        with self.read() as conn:
            rows = conn.execution_options(yield_per=10_000).execute(select(StarRow.user_id, StarRow.paper_id))
            yield from ((user_id, paper_id) for user_id, paper_id in rows)

    def star_totals(self, recorded: bool = False) -> StarTotals:
        """How many stars there are and how many readers have any: counted (a query over every
        star) and recorded; with ``recorded``, as the last count recorded them (one row), so a
        worker that only ranks finds the models the last refit fit for those totals without
        reading every star for each shard (0.14 s a shard at 100,000 readers)."""
        with self.read() as conn:
            value = conn.execute(select(MetaRow.value).where(MetaRow.key == STAR_TOTALS)).scalar()
            if recorded and value:
                stars, readers = value.split()
                return StarTotals(int(stars), int(readers))
            row = conn.execute(select(func.count(), func.count(func.distinct(StarRow.user_id)))).one()
        totals = StarTotals(row[0], row[1])
        # A command that only reads writes nothing; two processes' first counts may meet.
        if value != f"{totals.stars} {totals.readers}":
            with contextlib.suppress(IntegrityError), self.write() as conn:
                set_meta(conn, STAR_TOTALS, f"{totals.stars} {totals.readers}")
        return totals

    def signals(self, user_ids: Sequence[int], times: bool = True) -> dict[int, list[Any]]:
        """Stars and feedback clicks of these users, oldest first: user id -> [Signal]. Without
        ``times`` their ``at`` is None (reading and converting the timestamps is most of the cost)."""
        found: dict[int, list[Any]] = {}
        wanted = list(user_ids)
        star_at = StarRow.created_at if times else null()
        click_at = FeedbackRow.created_at if times else null()
        with self.read() as conn:
            for chunk in chunks(wanted, 5000):
                stars = conn.execute(select(StarRow.user_id, StarRow.paper_id, star_at)
                                     .where(StarRow.user_id.in_(chunk))
                                     .order_by(StarRow.user_id, StarRow.created_at, StarRow.paper_id))
                for user_id, paper_id, at in stars:
                    found.setdefault(user_id, []).append(Signal(paper_id, "star", at))
                clicks = conn.execute(select(FeedbackRow.user_id, FeedbackRow.paper_id, FeedbackRow.action, click_at)
                                      .where(FeedbackRow.user_id.in_(chunk))
                                      .order_by(FeedbackRow.user_id, FeedbackRow.created_at, FeedbackRow.id))
                for user_id, group in itertools.groupby(clicks, key=lambda c: c[0]):
                    rows = list(group)
                    found.setdefault(user_id, []).extend(
                        Signal(paper_id, action, at) for (_, paper_id, action, at), stands
                        in zip(rows, effective([r[1:3] for r in rows]), strict=True) if stands)
        return found

    def sent_map(self, user_ids: Sequence[int]) -> dict[int, set[str]]:
        """Papers already in a pending or sent digest, per user."""
        found: dict[int, set[str]] = {}
        with self.read() as conn:
            # Two look-ups, each by its index, not a join: with statistics taken before the
            # day's digests existed, PostgreSQL planned the join as a walk of every digest (or
            # every entry), and a condition on the status drew it to the status index, so the
            # status is filtered here.
            self.by_index(conn)
            owners: dict[int, int] = {}
            for chunk in chunks(list(user_ids), 5000):
                owners.update((digest_id, user_id) for digest_id, user_id, status in conn.execute(
                    select(DigestRow.id, DigestRow.user_id, DigestRow.status).where(DigestRow.user_id.in_(chunk)))
                    if status in ("pending", "sent"))
            for chunk in chunks(sorted(owners), 5000):
                for digest_id, paper_id in conn.execute(select(DigestEntryRow.digest_id, DigestEntryRow.paper_id)
                                                        .where(DigestEntryRow.digest_id.in_(chunk))):
                    found.setdefault(owners[digest_id], set()).add(paper_id)
        return found
