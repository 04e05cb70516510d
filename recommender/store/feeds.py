"""What a reader's Atom feed reads: the digests made for the "feed" channel, and the number
each reader's feed URL carries (moved on to revoke the URL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, true, update

from recommender.base.domain import Paper
from recommender.store.channel_posts import channel_marker
from recommender.store.schema import DigestEntryRow, DigestRow, PaperRow, UserRow
from recommender.store.store import Store

FEED_DIGESTS = 30  # the newest digests a feed shows (a month of daily digests)


@dataclass(frozen=True)
class FeedReader:
    id: int
    email: str
    created_at: datetime
    generation: int
    head: FeedHead | None = None  # read with the reader by ``reader_and_head``


@dataclass(frozen=True)
class FeedHead:
    """What decides whether a feed changed: its newest digest and how many it shows."""

    newest_id: int
    updated: datetime
    digests: int


@dataclass(frozen=True)
class FeedEntry:
    digest_id: int
    picked_at: datetime
    position: int
    paper: Paper
    score: float
    why: str


class FeedRows:
    def __init__(self, store: Store):
        self.store = store

    def reader(self, user_id: int) -> FeedReader | None:
        """The reader's email, since when they are known, and the number their feed URL must
        carry (None: no such reader)."""
        with self.store.read() as conn:
            row = conn.execute(select(UserRow.email, UserRow.created_at, UserRow.feed_generation)
                               .where(UserRow.id == user_id)).first()
        return FeedReader(user_id, row.email, row.created_at, row.feed_generation) if row is not None else None

    def reader_and_head(self, user_id: int) -> FeedReader | None:
        """``reader`` and ``head`` in one query: all a conditional poll needs."""
        shown = self._feed_digests(user_id).subquery()
        newest = select(func.max(shown.c.id), func.max(shown.c.created_at), func.count()).subquery()
        with self.store.read() as conn:
            row = conn.execute(select(UserRow.email, UserRow.created_at, UserRow.feed_generation, *newest.c)
                               .join_from(UserRow, newest, true())  # one row: the aggregate's
                               .where(UserRow.id == user_id)).first()
        if row is None:
            return None
        head = FeedHead(row[3], row[4], row[5]) if row[3] is not None else None
        return FeedReader(user_id, row.email, row.created_at, row.feed_generation, head)

    def rotate(self, user_id: int) -> int:
        """Revoke the reader's feed URL: the next one carries a new number."""
        with self.store.write() as conn:
            conn.execute(update(UserRow).where(UserRow.id == user_id)
                         .values(feed_generation=UserRow.feed_generation + 1))
            return int(conn.execute(select(UserRow.feed_generation).where(UserRow.id == user_id)).scalar_one())

    def _feed_digests(self, user_id: int):  # type: ignore[no-untyped-def]  # a select
        return (select(DigestRow.id, DigestRow.created_at)
                .where(DigestRow.user_id == user_id, DigestRow.channels.like(channel_marker("feed")))
                .order_by(DigestRow.id.desc()).limit(FEED_DIGESTS))

    def entries(self, user_id: int) -> list[FeedEntry]:
        """The entries of the reader's newest feed digests with their papers, newest digest
        first (one query: a feed is read once a minute by each of its readers)."""
        shown = self._feed_digests(user_id).subquery()
        e, p = DigestEntryRow, PaperRow
        with self.store.read() as conn:
            rows = conn.execute(select(shown.c.id, shown.c.created_at, e.position, e.score, e.why, p.id.label("paper_id"),
                                       p.title, p.abstract, p.authors, p.url, p.arxiv_id, p.published)
                                .join(e, e.digest_id == shown.c.id).join(p, p.id == e.paper_id)
                                .order_by(shown.c.id.desc(), e.position))
            return [FeedEntry(r.id, r.created_at, r.position,
                              Paper(id=r.paper_id, title=r.title, abstract=r.abstract, authors=tuple(r.authors or ()),
                                    url=r.url or "", arxiv_id=r.arxiv_id or "", published=r.published or ""),
                              r.score, r.why) for r in rows]
