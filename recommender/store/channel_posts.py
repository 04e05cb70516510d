"""The outbox of webhook posts, beside the digests' own: a post is stored rendered, with the
digests it covers, before any network call; senders lease it, record each accepted part,
and mark it sent, failed, or deferred, exactly as digests are (see store.outbox)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, insert, or_, select, update

from recommender.base.domain import DigestStatus
from recommender.store.lease_owners import owner_is_dead
from recommender.store.schema import ChannelPostDigestRow, ChannelPostRow, DigestRow
from recommender.store.store import Store, chunks, utcnow

# Digests a webhook is still owed: those of every status but these (a superseded digest's
# papers come again in the newer one; an unsubscribed reader's are not posted).
NOT_OWED = (DigestStatus.SUPERSEDED, DigestStatus.UNSUBSCRIBED)


@dataclass(frozen=True)
class ClaimedPost:
    id: int
    webhook: str
    parts: list[object]  # the request bodies, in order
    parts_sent: int
    attempts: int


@dataclass(frozen=True)
class PostItem:
    id: int
    webhook: str
    status: str
    papers: int
    parts: int
    parts_sent: int
    attempts: int
    last_error: str
    reply: str
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    digest_ids: tuple[int, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "channel": f"webhook:{self.webhook}", "status": self.status, "papers": self.papers,
                "parts": self.parts, "parts_sent": self.parts_sent, "attempts": self.attempts,
                "last_error": self.last_error, "reply": self.reply, "digests": list(self.digest_ids),
                "created_at": self.created_at.isoformat(),
                "sent_at": self.sent_at.isoformat() if self.sent_at else None}


def channel_marker(channel: str) -> str:
    """How a channel is kept in a digest's ``channels`` (between commas)."""
    return f"%,{channel},%"


class ChannelPosts:
    def __init__(self, store: Store):
        self.store = store

    def _covered(self, webhook: str):  # type: ignore[no-untyped-def]  # a correlated EXISTS clause
        return exists().where(ChannelPostDigestRow.digest_id == DigestRow.id,
                              ChannelPostDigestRow.post_id == ChannelPostRow.id, ChannelPostRow.webhook == webhook)

    def owed(self, webhook: str) -> list[int]:
        """The digests made for this webhook that no post of it covers yet, oldest first."""
        with self.store.read() as conn:
            return list(conn.execute(select(DigestRow.id).where(
                DigestRow.channels.like(channel_marker(f"webhook:{webhook}")), DigestRow.status.not_in(NOT_OWED),
                ~self._covered(webhook)).order_by(DigestRow.id)).scalars())

    def digests(self, digest_ids: Sequence[int]) -> list[tuple[int, int, str, datetime]]:
        """(id, user id, Message-ID, created) of these digests, oldest first."""
        d = DigestRow
        with self.store.read() as conn:
            return sorted((r.id, r.user_id, r.message_id, r.created_at) for chunk in chunks(sorted(digest_ids))
                          for r in conn.execute(select(d.id, d.user_id, d.message_id, d.created_at)
                                                .where(d.id.in_(chunk))))

    def create(self, webhook: str, digest_ids: Sequence[int], parts: Sequence[object], papers: int) -> int | None:
        """Store a pending post covering these digests; None (nothing stored) if another process
        posted any of them meanwhile (its post has them)."""
        with self.store.write() as conn:
            taken = conn.execute(select(DigestRow.id).where(DigestRow.id.in_(list(digest_ids)),
                                                            self._covered(webhook))).first()
            if taken is not None:
                return None
            post_id = conn.execute(insert(ChannelPostRow).values(
                webhook=webhook, status=DigestStatus.PENDING, papers=papers, payload=json.dumps(list(parts)).encode(),
                parts_sent=0, attempts=0, last_error="", reply="", lease_owner="", created_at=utcnow())
                .returning(ChannelPostRow.id)).scalar_one()
            conn.execute(insert(ChannelPostDigestRow), [{"post_id": post_id, "digest_id": d} for d in digest_ids])
        return int(post_id)

    def claim(self, owner: str, lease: timedelta, webhooks: Sequence[str], limit: int = 20,
              now: datetime | None = None) -> list[ClaimedPost]:
        """Due pending posts of these webhooks whose lease is free, expired, or held by a
        process of this host that is gone."""
        now = now or utcnow()
        p = ChannelPostRow
        with self.store.write() as conn:
            holders = conn.execute(select(p.lease_owner).distinct().where(p.status == DigestStatus.PENDING, p.lease_until >= now))
            dead = [h for h in holders.scalars() if owner_is_dead(h)]
            stmt = (select(p.id, p.webhook, p.payload, p.parts_sent, p.attempts)
                    .where(p.status == DigestStatus.PENDING, p.webhook.in_(list(webhooks)),
                           or_(p.lease_until.is_(None), p.lease_until < now, p.lease_owner.in_(dead)),
                           or_(p.next_attempt_at.is_(None), p.next_attempt_at <= now))
                    .order_by(p.id).limit(limit))
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = conn.execute(stmt).all()
            if rows:
                conn.execute(update(p).where(p.id.in_([r.id for r in rows]))
                             .values(lease_owner=owner, lease_until=now + lease))
        return [ClaimedPost(r.id, r.webhook, json.loads(r.payload), r.parts_sent, r.attempts) for r in rows]

    def part_sent(self, post_id: int, parts_sent: int, reply: str) -> None:
        """One more part was accepted: committed before the next is sent."""
        with self.store.write() as conn:
            conn.execute(update(ChannelPostRow).where(ChannelPostRow.id == post_id)
                         .values(parts_sent=parts_sent, reply=reply[:500]))

    def record(self, post_id: int, status: str, detail: str, attempts: int, retry_at: datetime | None = None) -> None:
        """sent, failed (with the reason), or deferred until ``retry_at``."""
        p = ChannelPostRow
        values: dict[str, object] = {"lease_owner": "", "lease_until": None, "attempts": p.attempts + attempts}
        if status == DigestStatus.SENT:
            values.update(status=DigestStatus.SENT, sent_at=utcnow(), last_error="", next_attempt_at=None)
        elif status == DigestStatus.FAILED:
            values.update(status=DigestStatus.FAILED, last_error=detail[:1000])
        else:
            values.update(last_error=detail[:1000], next_attempt_at=retry_at)
        with self.store.write() as conn:
            conn.execute(update(p).where(p.id == post_id, p.status == DigestStatus.PENDING).values(**values))

    def release_owner(self, owner: str) -> None:
        with self.store.write() as conn:
            conn.execute(update(ChannelPostRow).where(ChannelPostRow.lease_owner == owner,
                                                      ChannelPostRow.status == DigestStatus.PENDING)
                         .values(lease_owner="", lease_until=None))

    def requeue_failed(self) -> list[int]:
        """Failed and deferred posts due now; a failed one goes on from the part it stopped at."""
        p = ChannelPostRow
        with self.store.write() as conn:
            ids = list(conn.execute(select(p.id).where(or_(p.status == DigestStatus.FAILED, (p.status == DigestStatus.PENDING)
                                                           & p.next_attempt_at.is_not(None)))).scalars())
            if ids:
                conn.execute(update(p).where(p.id.in_(ids)).values(status=DigestStatus.PENDING, next_attempt_at=None))
        return ids

    def items(self, status: str | None = None, digest_ids: Sequence[int] | None = None) -> list[PostItem]:
        p = ChannelPostRow
        stmt = select(*p.__table__.columns).order_by(p.id)
        if status:
            stmt = stmt.where(p.status == status)
        with self.store.read() as conn:
            if digest_ids is not None:
                wanted: set[int] = set()
                for chunk in chunks(sorted(set(digest_ids))):
                    wanted.update(conn.execute(select(ChannelPostDigestRow.post_id)
                                               .where(ChannelPostDigestRow.digest_id.in_(chunk))).scalars())
                stmt = stmt.where(p.id.in_(sorted(wanted)))
            rows = conn.execute(stmt).all()
            covered: dict[int, list[int]] = {}
            for chunk in chunks([r.id for r in rows]):
                for post_id, digest_id in conn.execute(select(ChannelPostDigestRow.post_id, ChannelPostDigestRow.digest_id)
                                                       .where(ChannelPostDigestRow.post_id.in_(chunk))):
                    covered.setdefault(post_id, []).append(digest_id)
        return [PostItem(r.id, r.webhook, r.status, r.papers, len(json.loads(r.payload)), r.parts_sent, r.attempts,
                         r.last_error, r.reply, r.created_at, r.sent_at, r.next_attempt_at,
                         tuple(sorted(covered.get(r.id, ())))) for r in rows]
