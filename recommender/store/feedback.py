"""Feedback events (more / less / open clicks), link-scanner detection, and the per-user
data operations (export, forget)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from recommender.store.choices import OPPOSITE, effective
from recommender.store.database import chunks
from recommender.store.schema import (
    DigestEntryRow,
    DigestMessageRow,
    DigestRow,
    FeedbackRow,
    LinkHitRow,
    PaperRow,
    ProfileRow,
    StarRow,
    UserRow,
)
from recommender.store.store import Store

SWEEP_WINDOW = timedelta(seconds=60)
SWEEP_CONTRADICTIONS = 2  # papers of one digest with both "more" and "less" hit in the window
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


@dataclass
class _Known:
    """A feedback row as the batch sees it: stored already (``id``) or about to be inserted."""

    id: int | None
    action: str
    digest_id: int | None
    client: str
    at: datetime
    token_id: str
    values: dict[str, object] | None = None  # the row to insert, for new ones


@dataclass
class _Hit:
    """A link's latest hit: stored already (``id``) or about to be (``values``)."""

    at: datetime
    id: int | None
    action: str
    paper_id: str
    values: dict[str, object] | None = None
    moved: bool = False  # a stored hit whose time must be moved forward

    def move_to(self, at: datetime) -> None:
        self.at = at
        if self.values is not None:
            self.values["created_at"] = at
        else:
            self.moved = True


def _swept(window: dict[str, _Hit], since: datetime) -> bool:
    """A link scanner's sweep: since ``since``, both "more" and "less" of at least
    ``SWEEP_CONTRADICTIONS`` papers of the digest were hit (from any addresses). A scanner
    fetches every link of a message; no reader asks for more and for fewer papers like the
    same two papers within a minute, while one who opens many papers at once hits "open" only."""
    asked: dict[str, set[str]] = {}
    for hit in window.values():
        if hit.at >= since and hit.action in OPPOSITE:
            asked.setdefault(hit.paper_id, set()).add(hit.action)
    return sum(1 for actions in asked.values() if len(actions) == 2) >= SWEEP_CONTRADICTIONS


def _record_clicks(conn: Connection, clicks: Sequence[ClickEvent]) -> list[str]:
    """Record ``clicks`` in order with a handful of statements: the outcome of each is what
    recording them one at a time would give. Rules: a link scanner's sweep of a digest (see
    ``_swept``) records nothing: that hit and every click on the digest in the window are
    dropped; the same (user, paper, action, digest) twice is a repeat; "more" replaces an
    earlier "less" on the paper and vice versa."""
    if not clicks:
        return []
    digests = sorted({c.digest_id for c in clicks if c.digest_id is not None})
    earliest = min(c.at for c in clicks) - SWEEP_WINDOW
    # Per digest: each link's latest hit, from whatever address (scanners fetch from many).
    # Whether a link was hit within the window depends on its latest hit only, so one row per
    # link is kept (moved forward on a repeat hit).
    hits: dict[int, dict[str, _Hit]] = {}
    if digests:
        for hit in conn.execute(select(LinkHitRow.id, LinkHitRow.digest_id, LinkHitRow.token_id, LinkHitRow.action,
                                       LinkHitRow.paper_id, LinkHitRow.created_at)
                                .where(LinkHitRow.digest_id.in_(digests), LinkHitRow.created_at >= earliest)):
            window = hits.setdefault(hit.digest_id, {})
            seen = window.get(hit.token_id)
            if seen is None or hit.created_at > seen.at:
                window[hit.token_id] = _Hit(hit.created_at, hit.id, hit.action, hit.paper_id)
    known: dict[tuple[int, str], list[_Known]] = {}
    for row in conn.execute(select(FeedbackRow.id, FeedbackRow.user_id, FeedbackRow.paper_id, FeedbackRow.action,
                                   FeedbackRow.digest_id, FeedbackRow.client, FeedbackRow.created_at,
                                   FeedbackRow.token_id)
                            .where(FeedbackRow.user_id.in_(sorted({c.user_id for c in clicks})),
                                   FeedbackRow.paper_id.in_(sorted({c.paper_id for c in clicks})))):
        known.setdefault((row.user_id, row.paper_id), []).append(
            _Known(row.id, row.action, row.digest_id, row.client, row.created_at, row.token_id))
    outcomes: list[Any] = []
    stale_ids: set[int] = set()
    moved_rows: dict[int, datetime] = {}  # stored rows whose time moves to a click's
    forget_old_hits = False
    for click in clicks:
        client = click.client[:64]
        if click.digest_id is not None:
            window = hits.setdefault(click.digest_id, {})
            seen = window.get(click.token_id)
            if seen is None:
                window[click.token_id] = _Hit(click.at, None, click.action, click.paper_id, {
                    "digest_id": click.digest_id, "client": client, "token_id": click.token_id,
                    "action": click.action, "paper_id": click.paper_id, "created_at": click.at})
            elif click.at > seen.at:
                seen.move_to(click.at)
            since = click.at - SWEEP_WINDOW
            if _swept(window, since):
                _drop_swept(conn, known, click.digest_id, since)
                outcomes.append("scan")
                continue
            forget_old_hits = forget_old_hits or sum(1 for hit in window.values() if hit.at >= since) == 1
        rows = known.setdefault((click.user_id, click.paper_id), [])
        # A replaced choice whose replacement is past the sweep window has nothing left to wait for.
        gone = [r for r in rows if r.action in OPPOSITE and _superseded(r, rows, click.at - SWEEP_WINDOW)]
        if gone:
            stale_ids.update(r.id for r in gone if r.id is not None)
            rows[:] = [r for r in rows if r not in gone]
        same = next((r for r in rows if r.token_id == click.token_id), None)
        if same is not None and click.action in OPPOSITE:
            # This link's choice, replaced since, chosen again. A replacement made within the
            # sweep window goes, and the choice stands again at its own time (a sweep now does
            # not take it). One made before the window is kept behind it, and the choice moves to
            # now (a sweep now takes that move back, and the replacement stands again).
            since = click.at - SWEEP_WINDOW
            later = [r for r in rows if r.action == OPPOSITE[click.action] and r.at > same.at]
            recent = [r for r in later if r.at >= since]
            stale_ids.update(r.id for r in recent if r.id is not None)
            rows[:] = [r for r in rows if r not in recent]
            if len(recent) < len(later):
                same.at = click.at
                if same.values is not None:
                    same.values["created_at"] = click.at
                else:
                    moved_rows[same.id] = click.at  # type: ignore[index]  # a stored row has its id
            outcomes.append("recorded" if later else "repeat")
            continue
        standing = [r for r in rows if r.action not in OPPOSITE or r is _latest_choice(rows)]
        if any(r.action == click.action and r.digest_id == click.digest_id for r in standing):
            outcomes.append("repeat")  # this link, or another link to the same entry, was recorded
            continue
        if click.action in OPPOSITE:
            # "more" replaces an earlier "less" and vice versa. One made within the sweep window
            # goes now; an older one stays behind the new until that is past the window too (a
            # scanner's sweep drops the new, and the reader's choice must then still be there);
            # readers take the latest of the two (``effective``).
            since = click.at - SWEEP_WINDOW
            replaced = [r for r in rows if r.action in OPPOSITE and r.at >= since]
            stale_ids.update(r.id for r in replaced if r.id is not None)
            rows[:] = [r for r in rows if r not in replaced]
        rows.append(_Known(None, click.action, click.digest_id, client, click.at, click.token_id, {
            "user_id": click.user_id, "paper_id": click.paper_id, "action": click.action,
            "digest_id": click.digest_id, "token_id": click.token_id, "client": client, "created_at": click.at}))
        outcomes.append("recorded")
    if stale_ids:
        conn.execute(delete(FeedbackRow).where(FeedbackRow.id.in_(sorted(stale_ids))))
    if moved_rows:
        conn.execute(update(FeedbackRow).where(FeedbackRow.id == bindparam("row_id")).values(created_at=bindparam("at")),
                     [{"row_id": row_id, "at": at} for row_id, at in moved_rows.items() if row_id not in stale_ids])
    inserts = [r.values for rows in known.values() for r in rows if r.values is not None]
    _shown_topics(conn, inserts)
    if inserts:
        conn.execute(insert(FeedbackRow), inserts)
    new_hits = [h.values for window in hits.values() for h in window.values() if h.values is not None]
    if new_hits:
        conn.execute(insert(LinkHitRow), new_hits)
    moved = [{"hit_id": h.id, "at": h.at} for window in hits.values() for h in window.values() if h.moved]
    if moved:
        conn.execute(update(LinkHitRow).where(LinkHitRow.id == bindparam("hit_id")).values(created_at=bindparam("at")),
                     moved)
    if forget_old_hits:  # cheap moment to forget old hits
        conn.execute(delete(LinkHitRow).where(LinkHitRow.created_at < max(c.at for c in clicks) - HIT_RETENTION))
    return outcomes


def _shown_topics(conn: Connection, inserts: list[dict[str, object]]) -> None:
    """Each click takes the topic of the digest section its paper was shown in, so that it
    teaches that topic only."""
    digests = sorted({v["digest_id"] for v in inserts if v["digest_id"] is not None})  # type: ignore[type-var]
    topics: dict[tuple[object, object], str] = {}
    if digests:
        rows = conn.execute(select(DigestEntryRow.digest_id, DigestEntryRow.paper_id, DigestEntryRow.topic)
                            .where(DigestEntryRow.digest_id.in_(digests), DigestEntryRow.topic.is_not(None)))
        topics = {(r.digest_id, r.paper_id): r.topic for r in rows}
    for values in inserts:
        values["topic"] = topics.get((values["digest_id"], values["paper_id"]))


def _latest_choice(rows: Sequence[_Known]) -> _Known | None:
    """The reader's standing choice on a paper: its latest "more" or "less"."""
    return max((r for r in rows if r.action in OPPOSITE), key=lambda r: r.at, default=None)


def _superseded(row: _Known, rows: Sequence[_Known], since: datetime) -> bool:
    """Whether a later opposite choice made before ``since`` (so past any sweep) replaced ``row``."""
    return any(r.action == OPPOSITE[row.action] and row.at < r.at < since for r in rows)


def _drop_swept(conn: Connection, known: dict[tuple[int, str], list[_Known]], digest_id: int,
                since: datetime) -> None:
    """A sweep's clicks on this digest in the window record nothing, stored or pending, from
    whatever address they came."""
    conn.execute(delete(FeedbackRow).where(FeedbackRow.digest_id == digest_id, FeedbackRow.created_at >= since))
    for rows in known.values():
        rows[:] = [r for r in rows if not (r.digest_id == digest_id and r.at >= since)]


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
            return _record_clicks(conn, [ClickEvent(user_id, paper_id, action, digest_id, token_id, client, now)]) \
                == ["recorded"]

    @staticmethod
    def record_clicks(conn: Connection, clicks: Sequence[ClickEvent]) -> list[str]:
        """Record link clicks in order inside the caller's write transaction: "recorded",
        "repeat" (recorded before) or "scan" (a link scanner's hit: nothing kept) for each."""
        return _record_clicks(conn, clicks)

    def undo(self, token_id: str) -> bool:
        with self.store.write() as conn:
            return bool(conn.execute(delete(FeedbackRow).where(FeedbackRow.token_id == token_id)).rowcount)

    def events(self, user_id: int | None = None, standing_only: bool = True) -> list[FeedbackEvent]:
        """Recorded clicks, oldest first; ``standing_only``: without the replaced choices kept
        behind their replacements (see ``_record_clicks``)."""
        stmt = (select(FeedbackRow.id, UserRow.email, FeedbackRow.paper_id, PaperRow.title, FeedbackRow.action,
                       FeedbackRow.digest_id, FeedbackRow.created_at)
                .join(UserRow, UserRow.id == FeedbackRow.user_id).join(PaperRow, PaperRow.id == FeedbackRow.paper_id)
                .order_by(FeedbackRow.created_at, FeedbackRow.id))
        if user_id is not None:
            stmt = stmt.where(FeedbackRow.user_id == user_id)
        with self.store.read() as conn:
            rows = conn.execute(stmt).all()
        stands = effective([(f"{row.email}\0{row.paper_id}", row.action) for row in rows]) if standing_only \
            else [True] * len(rows)
        return [FeedbackEvent(*row) for row, kept in zip(rows, stands, strict=True) if kept]

    def clicked(self, user_id: int, paper_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """What this reader clicked (more, less, open) on each of these papers, from any digest
        (of "more" and "less", the latest)."""
        found: dict[str, set[str]] = {}
        with self.store.read() as conn:
            for chunk in chunks(list(dict.fromkeys(paper_ids))):
                rows = conn.execute(select(FeedbackRow.paper_id, FeedbackRow.action).where(
                    FeedbackRow.user_id == user_id, FeedbackRow.paper_id.in_(chunk))
                    .order_by(FeedbackRow.created_at, FeedbackRow.id)).all()
                for (paper_id, action), stands in zip(rows, effective(rows), strict=True):
                    if stands:
                        found.setdefault(paper_id, set()).add(action)
        return {paper_id: frozenset(actions) for paper_id, actions in found.items()}

    def count(self) -> int:
        with self.store.read() as conn:
            return conn.execute(select(func.count()).select_from(FeedbackRow)).scalar_one()

    # -- a user's data --------------------------------------------------------------------------
    def export(self, user_id: int) -> dict[str, Any]:
        """Everything stored about a user, as plain JSON-able data."""
        with self.store.read() as conn:
            user = conn.execute(select(UserRow).where(UserRow.id == user_id)).one()
            stars = conn.execute(select(StarRow.paper_id, StarRow.origin, StarRow.created_at, StarRow.topic)
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
            "stars": [{"paper_id": s.paper_id, "origin": s.origin, "created_at": iso(s.created_at), "topic": s.topic}
                      for s in stars],
            "feedback": [e.as_json() for e in self.events(user_id, standing_only=False)],
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
                conn.execute(delete(DigestMessageRow).where(DigestMessageRow.digest_id.in_(digest_ids)))
                conn.execute(delete(LinkHitRow).where(LinkHitRow.digest_id.in_(digest_ids)))
            counts["digests"] = conn.execute(delete(DigestRow).where(DigestRow.user_id == user_id)).rowcount
            conn.execute(delete(ProfileRow).where(ProfileRow.user_id == user_id))
            conn.execute(delete(UserRow).where(UserRow.id == user_id))
        return counts
