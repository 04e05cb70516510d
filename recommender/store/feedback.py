"""Feedback events (more / less / open clicks), link-scanner detection, and the per-user
data operations (export, forget)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from recommender.store.schema import (
    DigestEntryRow,
    DigestRow,
    FeedbackRow,
    LinkHitRow,
    PaperRow,
    ProfileRow,
    StarRow,
    UserRow,
)
from recommender.store.store import Store

OPPOSITE = {"more": "less", "less": "more"}
SCAN_WINDOW = timedelta(seconds=10)
SCAN_DISTINCT_LINKS = 5
HIT_RETENTION = timedelta(hours=1)


@dataclass(frozen=True)
class ClickEvent:
    """One click on a digest link, to be recorded."""

    user_id: int
    paper_id: str
    action: str
    digest_id: int | None
    token_id: str
    client: str
    at: datetime


def _click(conn: Connection, click: ClickEvent) -> str:
    if click.digest_id is not None and _scan(conn, click.digest_id, click.client, click.token_id, click.at):
        return "scan"
    return "recorded" if _record(conn, click) else "repeat"


def _record(conn: Connection, click: ClickEvent) -> bool:
    # A token names one (user, paper, action, digest), so one lookup finds both a repeat of this
    # link and the same click through another link to the same entry.
    earlier = conn.execute(select(FeedbackRow.action, FeedbackRow.digest_id).where(
        FeedbackRow.user_id == click.user_id, FeedbackRow.paper_id == click.paper_id)).all()
    if any(row.action == click.action and row.digest_id == click.digest_id for row in earlier):
        return False
    if click.action in OPPOSITE and any(row.action == OPPOSITE[click.action] for row in earlier):
        conn.execute(delete(FeedbackRow).where(
            FeedbackRow.user_id == click.user_id, FeedbackRow.paper_id == click.paper_id,
            FeedbackRow.action == OPPOSITE[click.action]))
    conn.execute(insert(FeedbackRow).values(
        user_id=click.user_id, paper_id=click.paper_id, action=click.action, digest_id=click.digest_id,
        token_id=click.token_id, client=click.client[:64], created_at=click.at))
    return True


def _scan(conn: Connection, digest_id: int, client: str, token_id: str, now: datetime) -> bool:
    """Note a link hit; True when this client has now hit more than five distinct links of
    the digest within ten seconds (a mail filter scanning the message). Then the clicks it
    recorded in that window are removed too."""
    since = now - SCAN_WINDOW
    conn.execute(insert(LinkHitRow).values(digest_id=digest_id, client=client[:64], token_id=token_id,
                                           created_at=now))
    distinct = conn.execute(select(func.count(func.distinct(LinkHitRow.token_id))).where(
        LinkHitRow.digest_id == digest_id, LinkHitRow.client == client[:64],
        LinkHitRow.created_at >= since)).scalar_one()
    if distinct > SCAN_DISTINCT_LINKS:
        conn.execute(delete(FeedbackRow).where(
            FeedbackRow.digest_id == digest_id, FeedbackRow.client == client[:64],
            FeedbackRow.created_at >= since))
        return True
    if distinct == 1:  # cheap moment to forget old hits
        conn.execute(delete(LinkHitRow).where(LinkHitRow.created_at < now - HIT_RETENTION))
    return False


@dataclass(frozen=True)
class FeedbackEvent:
    id: int
    email: str
    paper_id: str
    title: str
    action: str
    digest_id: int | None
    created_at: datetime

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "user": self.email, "paper_id": self.paper_id, "title": self.title,
                "action": self.action, "digest_id": self.digest_id, "created_at": self.created_at.isoformat()}


class FeedbackLog:
    def __init__(self, store: Store):
        self.store = store

    def record(self, user_id: int, paper_id: str, action: str, digest_id: int | None, token_id: str,
               client: str, now: datetime) -> bool:
        """Record one click; False when this token was already recorded. A "more" replaces an
        earlier "less" on the same paper and vice versa."""
        with self.store.write() as conn:
            return _record(conn, ClickEvent(user_id, paper_id, action, digest_id, token_id, client, now))

    @staticmethod
    def click(conn: Connection, click: ClickEvent) -> str:
        """Record a link click inside the caller's write transaction: "recorded", "repeat"
        (this click was recorded before) or "scan" (a link scanner's hit: nothing kept)."""
        return _click(conn, click)

    def undo(self, token_id: str) -> bool:
        with self.store.write() as conn:
            return bool(conn.execute(delete(FeedbackRow).where(FeedbackRow.token_id == token_id)).rowcount)

    def is_recorded(self, token_id: str) -> bool:
        with self.store.read() as conn:
            return conn.execute(select(FeedbackRow.id).where(FeedbackRow.token_id == token_id)).first() is not None

    def events(self, user_id: int | None = None) -> list[FeedbackEvent]:
        stmt = (select(FeedbackRow.id, UserRow.email, FeedbackRow.paper_id, PaperRow.title, FeedbackRow.action,
                       FeedbackRow.digest_id, FeedbackRow.created_at)
                .join(UserRow, UserRow.id == FeedbackRow.user_id).join(PaperRow, PaperRow.id == FeedbackRow.paper_id)
                .order_by(FeedbackRow.created_at, FeedbackRow.id))
        if user_id is not None:
            stmt = stmt.where(FeedbackRow.user_id == user_id)
        with self.store.read() as conn:
            return [FeedbackEvent(*row) for row in conn.execute(stmt)]

    def count(self) -> int:
        with self.store.read() as conn:
            return conn.execute(select(func.count()).select_from(FeedbackRow)).scalar_one()

    # -- a user's data --------------------------------------------------------------------------
    def export(self, user_id: int) -> dict[str, Any]:
        """Everything stored about a user, as plain JSON-able data."""
        with self.store.read() as conn:
            user = conn.execute(select(UserRow).where(UserRow.id == user_id)).one()
            stars = conn.execute(select(StarRow.paper_id, StarRow.origin, StarRow.created_at)
                                 .where(StarRow.user_id == user_id).order_by(StarRow.created_at)).all()
            digests = conn.execute(select(DigestRow.id, DigestRow.status, DigestRow.subject, DigestRow.message_id,
                                          DigestRow.created_at, DigestRow.sent_at)
                                   .where(DigestRow.user_id == user_id).order_by(DigestRow.id)).all()
            entries = conn.execute(select(DigestEntryRow.digest_id, DigestEntryRow.paper_id, DigestEntryRow.score)
                                   .join(DigestRow, DigestRow.id == DigestEntryRow.digest_id)
                                   .where(DigestRow.user_id == user_id)
                                   .order_by(DigestEntryRow.digest_id, DigestEntryRow.position)).all()
            profile = conn.execute(select(ProfileRow.terms, ProfileRow.sources, ProfileRow.updated_at)
                                   .where(ProfileRow.user_id == user_id)).first()
        by_digest: dict[int, list[dict[str, object]]] = {}
        for e in entries:
            by_digest.setdefault(e.digest_id, []).append({"paper_id": e.paper_id, "score": e.score})

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "email": user.email,
            "created_at": iso(user.created_at),
            "unsubscribed_at": iso(user.unsubscribed_at),
            "stars": [{"paper_id": s.paper_id, "origin": s.origin, "created_at": iso(s.created_at)} for s in stars],
            "feedback": [e.as_json() for e in self.events(user_id)],
            "digests": [{"id": d.id, "status": d.status, "subject": d.subject, "message_id": d.message_id,
                         "created_at": iso(d.created_at), "sent_at": iso(d.sent_at),
                         "entries": by_digest.get(d.id, [])} for d in digests],
            "profile": None if profile is None else {
                "terms": profile.terms, "papers": profile.sources, "updated_at": iso(profile.updated_at)},
        }

    def forget(self, user_id: int) -> dict[str, int]:
        """Delete a user's stars, feedback, digests and profile, and the user row itself."""
        with self.store.write() as conn:
            digest_ids = list(conn.execute(select(DigestRow.id).where(DigestRow.user_id == user_id)).scalars())
            counts = {
                "stars": conn.execute(delete(StarRow).where(StarRow.user_id == user_id)).rowcount,
                "feedback": conn.execute(delete(FeedbackRow).where(FeedbackRow.user_id == user_id)).rowcount,
            }
            if digest_ids:
                conn.execute(delete(DigestEntryRow).where(DigestEntryRow.digest_id.in_(digest_ids)))
                conn.execute(delete(LinkHitRow).where(LinkHitRow.digest_id.in_(digest_ids)))
            counts["digests"] = conn.execute(delete(DigestRow).where(DigestRow.user_id == user_id)).rowcount
            conn.execute(delete(ProfileRow).where(ProfileRow.user_id == user_id))
            conn.execute(delete(UserRow).where(UserRow.id == user_id))
        return counts
