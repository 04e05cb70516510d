"""The outbox: digests stored before any network call, as what they are (their entries, the
Message-ID, the time the message is dated), then marked sent or failed; the message is
rendered from them when it is sent, the same at every attempt. Workers claim pending rows with
a lease, so a crashed sender's digest is picked up again (and re-sent with the same
Message-ID). Digests stored before keep their rendered message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from recommender.base.domain import DeliveryStatus, DigestStatus
from recommender.store.lease_owners import owner_is_dead
from recommender.store.outbox_types import (
    Claimed,
    DeliveryOutcome,
    DigestState,
    DigestToCreate,
    NewDigest,
    OutboxItem,
    StoredEntry,
)
from recommender.store.schema import DigestEntryRow, DigestMessageRow, DigestRow, MetaRow, UserRow
from recommender.store.store import Store, chunks, set_meta, utcnow

__all__ = ["Claimed", "DeliveryOutcome", "DigestState", "DigestToCreate", "NewDigest", "Outbox", "OutboxItem",
           "Readers", "StoredEntry"]
QUEUED = (DigestStatus.PENDING, DigestStatus.SENT, DigestStatus.NO_EMAIL)
# Which readers' digests a delivery takes: a few ids, or a subquery (store.run_readers) for many.
Readers = Sequence[int] | Select[int]
NEXT_DIGEST_ID = "next_digest_id"  # meta key: the first digest id not yet reserved (SQLite)
PRUNED_BELOW = "pruned_below"  # meta key: the digests below this id are pruned (or still owed)
DEFERRED_FOR_SMTP = "deferred_for_smtp"  # meta key: the SMTP settings the deferred digests failed with


class Outbox:
    def __init__(self, store: Store):
        self.store = store

    # -- what a new digest covers ---------------------------------------------------------------
    def last_queued_batches(self, user_ids: Sequence[int]) -> dict[int, int]:
        """user id -> newest batch covered by their pending or sent digests (users with none left out)."""
        found: dict[int, int] = {}
        with self.store.read() as conn:
            self.store.by_index(conn)
            for chunk in chunks(list(user_ids), 5000):
                # (the status in the aggregate, not the WHERE: as in ``sent_map``)
                rows = conn.execute(select(DigestRow.user_id,
                                           func.max(DigestRow.last_batch_id).filter(DigestRow.status.in_(QUEUED)))
                                    .where(DigestRow.user_id.in_(chunk))
                                    .group_by(DigestRow.user_id))
                found.update({r[0]: r[1] for r in rows if r[1] is not None})
        return found

    # -- writing --------------------------------------------------------------------------------
    def create_many(self, digests: Sequence[DigestToCreate]) -> list[int]:
        """Insert pending digests with their entries (and a rendered message, where the
        renderer gives one), in one transaction (all or none): a few statements for the group
        instead of three per digest.

        A message carries its digest's id (links, Message-ID), yet rendering is slow: done
        inside the write transaction it held SQLite's only write lock for the whole group,
        and the delivery side's outcome commits queued behind it. So the ids are reserved
        first (never handed out twice, so several processes can render at once), the messages
        rendered, and only then is the write lock taken."""
        if not digests:
            return []
        now = utcnow()
        reserved = self._reserve_ids(len(digests))
        rendered = [d.render(digest_id) for digest_id, d in zip(reserved, digests, strict=True)]
        with self.store.write() as conn:
            conn.execute(insert(DigestRow), [{
                "id": digest_id, "user_id": d.user_id, "status": DigestStatus.PENDING if "email" in d.channels else DigestStatus.NO_EMAIL,
                "message_id": r.message_id, "subject": r.subject, "last_batch_id": d.last_batch_id, "attempts": 0,
                "last_error": "", "server_reply": "", "lease_owner": "", "created_at": now,
                "channels": "," + ",".join(d.channels) + ",", "dated_at": d.dated_at,
            } for digest_id, d, r in zip(reserved, digests, rendered, strict=True)])
            messages = [{"digest_id": digest_id, "message": r.message}
                        for digest_id, r in zip(reserved, rendered, strict=True) if r.message is not None]
            if messages:
                conn.execute(insert(DigestMessageRow), messages)
            # A new digest covers the batches of its user's failed ones (they do not count as
            # queued): those are superseded, so no paper goes out twice under two Message-IDs.
            conn.execute(update(DigestRow).where(DigestRow.user_id.in_({d.user_id for d in digests}),
                                                 DigestRow.status == DigestStatus.FAILED).values(status=DigestStatus.SUPERSEDED))
            entries = [{"digest_id": digest_id, "position": i, "paper_id": pid, "score": score, "why": why,
                        "match": match, "topic": d.topics[i] if d.topics else None}
                       for digest_id, d in zip(reserved, digests, strict=True)
                       for i, (pid, score, why, match) in enumerate(d.entries)]
            if entries:
                conn.execute(insert(DigestEntryRow), entries)
        return reserved

    def _reserve_ids(self, count: int) -> list[int]:
        """``count`` ids for new digests, never handed out twice: drawn from PostgreSQL's
        sequence, or on SQLite from a counter in the meta table (kept beyond the largest id),
        moved on in a write transaction of its own that lasts a moment."""
        if self.store.engine.dialect.name == "postgresql":
            with self.store.read() as conn:
                return list(conn.execute(text(
                    "SELECT nextval(pg_get_serial_sequence('digests', 'id')) FROM generate_series(1, :n)"),
                    {"n": count}).scalars())
        with self.store.write() as conn:
            counter = conn.execute(select(MetaRow.value).where(MetaRow.key == NEXT_DIGEST_ID)).scalar()
            first = max(self._next_rowid(conn), int(counter or 0))
            if counter is None:
                conn.execute(insert(MetaRow).values(key=NEXT_DIGEST_ID, value=str(first + count)))
            else:
                conn.execute(update(MetaRow).where(MetaRow.key == NEXT_DIGEST_ID).values(value=str(first + count)))
        return list(range(first, first + count))

    @staticmethod
    def _next_rowid(conn: Connection) -> int:
        """The id SQLite gives the next digest (the table has no AUTOINCREMENT: largest + 1)."""
        return (conn.execute(select(func.max(DigestRow.id))).scalar() or 0) + 1

    def housekeep(self, now: datetime | None = None) -> list[str]:
        """Once per delivery run (a worker's: once a minute), not per claim: mark the pending digests of readers who
        unsubscribed (they get nothing more, digests waiting for a retry included: marked, not
        deleted), and return the lease holders that are dead processes of this host (what they
        held is free at once)."""
        now = now or utcnow()
        with self.store.write() as conn:
            conn.execute(update(DigestRow).where(
                DigestRow.status == DigestStatus.PENDING,
                DigestRow.user_id.in_(select(UserRow.id).where(UserRow.unsubscribed_at.is_not(None))))
                .values(status=DigestStatus.UNSUBSCRIBED, lease_owner="", lease_until=None))
            holders = conn.execute(select(DigestRow.lease_owner).distinct().where(
                DigestRow.status == DigestStatus.PENDING, DigestRow.lease_until >= now)).scalars()
            return [h for h in holders if owner_is_dead(h)]

    def claim(self, owner: str, lease: timedelta, limit: int = 100, user_ids: Readers | None = None,
              now: datetime | None = None, dead: Sequence[str] | None = None) -> list[Claimed]:
        """Take up to ``limit`` due pending digests whose lease is free, expired or held by one of
        the ``dead`` (``housekeep``'s answer; asked here when not given). PostgreSQL skips rows
        other workers hold."""
        now = now or utcnow()
        dead = self.housekeep(now) if dead is None else dead
        with self.store.write() as conn:
            stmt = (select(DigestRow.id, UserRow.email, DigestMessageRow.message, DigestRow.attempts,
                           DigestRow.user_id, DigestRow.message_id, DigestRow.dated_at)
                    .join(UserRow, UserRow.id == DigestRow.user_id)
                    .outerjoin(DigestMessageRow, DigestMessageRow.digest_id == DigestRow.id)
                    .where(DigestRow.status == DigestStatus.PENDING,
                           or_(DigestRow.lease_until.is_(None), DigestRow.lease_until < now,
                               DigestRow.lease_owner.in_(list(dead))),
                           or_(DigestRow.next_attempt_at.is_(None), DigestRow.next_attempt_at <= now))
                    .order_by(DigestRow.id).limit(limit))
            if user_ids is not None:
                stmt = stmt.where(DigestRow.user_id.in_(user_ids if isinstance(user_ids, Select) else list(user_ids)))
            if conn.dialect.name == "postgresql":
                # Read the pending index in id order and stop at the batch: after a bulk enqueue,
                # statistics not yet analyzed make the planner read and sort every pending row at
                # each claim instead (92 against 1 ms with 20,000 pending: bench/RESULTS.md, scale).
                self.store.planned(conn, "enable_bitmapscan", "enable_sort")
                stmt = stmt.with_for_update(skip_locked=True, of=DigestRow)
            rows = conn.execute(stmt).all()
            if rows:
                conn.execute(update(DigestRow).where(DigestRow.id.in_([r.id for r in rows]))
                             .values(lease_owner=owner, lease_until=now + lease))
        return [Claimed(*r) for r in rows]

    def release(self, digest_ids: Sequence[int]) -> None:
        """Give claimed digests back to the queue without trying them."""
        with self.store.write() as conn:
            conn.execute(update(DigestRow).where(DigestRow.id.in_(list(digest_ids)))
                         .values(lease_owner="", lease_until=None))

    def record_outcomes(self, outcomes: Sequence[DeliveryOutcome], retry_at: datetime, smtp_settings: str = "") -> None:
        """What happened to each of these deliveries, in one transaction: sent, failed, or
        deferred until ``retry_at`` (a transient failure that outlasted a run's retries), a
        deferral that holds for these ``smtp_settings`` only (see ``retry_if_settings_changed``)."""
        if not outcomes:
            return
        now = utcnow()
        sent = [{"digest_id": o.digest_id, "reply": o.detail[:500], "tries": o.attempts}
                for o in outcomes if o.status == DeliveryStatus.SENT]
        with self.store.write() as conn:
            if sent:
                conn.execute(update(DigestRow).where(DigestRow.id == bindparam("digest_id"), DigestRow.status == DigestStatus.PENDING)
                             .values(status=DigestStatus.SENT, server_reply=bindparam("reply"), sent_at=now, lease_owner="",
                                     lease_until=None, attempts=DigestRow.attempts + bindparam("tries"),
                                     last_error=""), sent)
                # A message stored with its digest is not kept once sent: it renders again from the entries.
                conn.execute(delete(DigestMessageRow).where(DigestMessageRow.digest_id.in_([o["digest_id"] for o in sent])))
            if smtp_settings and any(o.status not in ("sent", "failed") for o in outcomes):
                set_meta(conn, DEFERRED_FOR_SMTP, smtp_settings)
            for o in outcomes:
                if o.status == DeliveryStatus.FAILED:
                    conn.execute(update(DigestRow).where(DigestRow.id == o.digest_id).values(
                        status=DigestStatus.FAILED, last_error=o.detail[:1000], lease_owner="", lease_until=None,
                        attempts=DigestRow.attempts + o.attempts))
                elif o.status != DeliveryStatus.SENT:
                    conn.execute(update(DigestRow).where(DigestRow.id == o.digest_id).values(
                        last_error=o.detail[:1000], lease_owner="", lease_until=None, next_attempt_at=retry_at,
                        attempts=DigestRow.attempts + o.attempts))

    def retry_if_settings_changed(self, smtp_settings: str) -> int:
        """Deferred digests are due at once when the SMTP settings changed since they were
        deferred (the fix of a wrong host or port is tried now, not after the old backoff).
        Returns how many were made due."""
        with self.store.write() as conn:
            deferred_for = conn.execute(select(MetaRow.value).where(MetaRow.key == DEFERRED_FOR_SMTP)).scalar()
            if deferred_for is None or deferred_for == smtp_settings:
                return 0
            made_due = conn.execute(update(DigestRow).where(DigestRow.status == "pending",
                                                            DigestRow.next_attempt_at.is_not(None))
                                    .values(next_attempt_at=None)).rowcount
            conn.execute(update(MetaRow).where(MetaRow.key == DEFERRED_FOR_SMTP).values(value=smtp_settings))
        return made_due

    def requeue_failed(self, user_ids: Sequence[int] | None = None) -> list[int]:
        """Make failed and deferred digests due now (those of unsubscribed readers stay as they are)."""
        with self.store.write() as conn:
            stmt = (select(DigestRow.id).join(UserRow, UserRow.id == DigestRow.user_id)
                    .where(UserRow.unsubscribed_at.is_(None),
                           or_(DigestRow.status == DigestStatus.FAILED,
                               and_(DigestRow.status == DigestStatus.PENDING, DigestRow.next_attempt_at.is_not(None)))))
            if user_ids is not None:
                stmt = stmt.where(DigestRow.user_id.in_(list(user_ids)))
            ids = list(conn.execute(stmt).scalars())
            if ids:
                conn.execute(update(DigestRow).where(DigestRow.id.in_(ids)).values(
                    status=DigestStatus.PENDING, next_attempt_at=None))
        return ids

    def release_owner(self, owner: str) -> None:
        """Give back every digest this owner holds and has not sent (its run stopped)."""
        with self.store.write() as conn:
            conn.execute(update(DigestRow).where(DigestRow.lease_owner == owner, DigestRow.status == DigestStatus.PENDING)
                         .values(lease_owner="", lease_until=None))

    def latest_states(self, user_ids: Sequence[int]) -> dict[int, DigestState]:
        """Each user's newest digest that is still owed or was just handled (users with none left out)."""
        found: dict[int, DigestState] = {}
        d = DigestRow
        with self.store.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                newest = (select(func.max(d.id)).where(d.user_id.in_(chunk), d.status != DigestStatus.SUPERSEDED)
                          .group_by(d.user_id))
                rows = conn.execute(select(d.id, d.user_id, d.status, d.next_attempt_at, d.lease_owner,
                                           d.lease_until, d.last_error, d.created_at, d.sent_at,
                                           select(func.count()).where(DigestEntryRow.digest_id == d.id)
                                           .scalar_subquery().label("n"))
                                    .where(d.id.in_(newest)))
                for r in rows:
                    found[r.user_id] = DigestState(r.id, r.status, r.next_attempt_at, r.lease_owner, r.lease_until,
                                                   r.last_error, r.created_at, r.sent_at, r.n or 0)
        return found

    # -- reading --------------------------------------------------------------------------------
    def items(self, status: str | None = None, user_ids: Sequence[int] | None = None,
              digest_ids: Sequence[int] | None = None) -> list[OutboxItem]:
        d = DigestRow
        stmt = (select(d.id, d.user_id, UserRow.email, d.status, d.subject, d.message_id, d.attempts, d.last_error,
                       d.server_reply, d.created_at, d.sent_at,
                       select(func.count()).where(DigestEntryRow.digest_id == d.id).scalar_subquery().label("n"))
                .join(UserRow, UserRow.id == DigestRow.user_id).order_by(DigestRow.id))
        if status:
            stmt = stmt.where(DigestRow.status == status)
        if user_ids is not None:
            stmt = stmt.where(DigestRow.user_id.in_(list(user_ids)))
        with self.store.read() as conn:
            if digest_ids is None:
                rows = conn.execute(stmt).all()
            else:
                rows = [r for chunk in chunks(sorted(set(digest_ids))) for r in conn.execute(stmt.where(d.id.in_(chunk)))]
        return [OutboxItem(r.id, r.user_id, r.email, r.status, r.subject, r.message_id, r.attempts, r.last_error,
                           r.server_reply, r.created_at, r.sent_at, r.n or 0) for r in rows]

    def prune(self, before: datetime) -> int:
        """Drop what digests made before ``before`` that will not be sent again (sent,
        superseded, unsubscribed) no longer need: their stored messages (digests stored before
        messages were rendered at send time) and their entries' reasons; the papers they held
        stay (no paper goes out twice). Reads only what is not pruned yet: digests from the
        first one not pruned (a mark in the meta table, never past a pending or failed digest) up to
        the first made since ``before`` (an index on the creation time). Returns how many it went
        through."""
        gone = (DigestStatus.SENT, DigestStatus.SUPERSEDED, DigestStatus.UNSUBSCRIBED)
        with self.store.write() as conn:
            newest = conn.execute(select(DigestRow.id).where(DigestRow.created_at >= before)
                                  .order_by(DigestRow.created_at, DigestRow.id).limit(1)).scalar()
            limit = newest if newest is not None else self._next_rowid(conn)
            start = int(conn.execute(select(MetaRow.value).where(MetaRow.key == PRUNED_BELOW)).scalar() or 0)
            rows = conn.execute(select(DigestRow.id, DigestRow.status).where(DigestRow.id >= start,
                                                                             DigestRow.id < limit)).all()
            pruned = [r.id for r in rows if r.status in gone]
            for chunk in chunks(pruned, 5000):
                conn.execute(delete(DigestMessageRow).where(DigestMessageRow.digest_id.in_(chunk)))
                conn.execute(update(DigestEntryRow).where(DigestEntryRow.digest_id.in_(chunk)).values(why=""))
            owed = [r.id for r in rows if r.status in (DigestStatus.PENDING, DigestStatus.FAILED)]
            set_meta(conn, PRUNED_BELOW, str(min(owed, default=limit)))
        return len(pruned)

    def message(self, digest_id: int) -> bytes | None:
        """The stored message (None: rendered when sent, see ``pipeline.digests.message_of``)."""
        with self.store.read() as conn:
            return conn.execute(select(DigestMessageRow.message)
                                .where(DigestMessageRow.digest_id == digest_id)).scalar()

    def stored_entries(self, digest_ids: Sequence[int]) -> dict[int, list[StoredEntry]]:
        """Digest id -> its entries in order (digests without any left out)."""
        found: dict[int, list[StoredEntry]] = {}
        e = DigestEntryRow
        with self.store.read() as conn:
            for chunk in chunks(sorted(set(digest_ids)), 5000):
                for r in conn.execute(select(e.digest_id, e.position, e.paper_id, e.score, e.why, e.match, e.topic)
                                      .where(e.digest_id.in_(chunk)).order_by(e.digest_id, e.position)):
                    found.setdefault(r.digest_id, []).append(
                        StoredEntry(r.position, r.paper_id, r.score, r.why, r.match, r.topic or ""))
        return found

    def rendering(self, digest_id: int) -> Claimed | None:
        """What renders a digest's message (as a claim returns it), without claiming it."""
        with self.store.read() as conn:
            r = conn.execute(select(DigestRow.id, UserRow.email, DigestMessageRow.message, DigestRow.attempts,
                                    DigestRow.user_id, DigestRow.message_id, DigestRow.dated_at)
                             .join(UserRow, UserRow.id == DigestRow.user_id)
                             .outerjoin(DigestMessageRow, DigestMessageRow.digest_id == DigestRow.id)
                             .where(DigestRow.id == digest_id)).first()
        return Claimed(*r) if r is not None else None

    def entries(self, digest_id: int) -> list[tuple[int, str, float, str, int]]:
        """(position, paper id, score, why, match) of a digest's entries."""
        with self.store.read() as conn:
            rows = conn.execute(select(DigestEntryRow.position, DigestEntryRow.paper_id, DigestEntryRow.score,
                                       DigestEntryRow.why, DigestEntryRow.match)
                                .where(DigestEntryRow.digest_id == digest_id).order_by(DigestEntryRow.position))
            return [(r.position, r.paper_id, r.score, r.why, r.match) for r in rows]

    def unsubscribed(self, user_ids: Sequence[int] | None = None) -> set[int]:
        """The unsubscribed readers (among ``user_ids``: read through the primary key, not the
        whole users table, which a shard of a large install must not scan)."""
        with self.store.read() as conn:
            if user_ids is None:
                return set(conn.execute(select(UserRow.id).where(UserRow.unsubscribed_at.is_not(None))).scalars())
            found: set[int] = set()
            for chunk in chunks(list(user_ids), 5000):
                found.update(conn.execute(select(UserRow.id).where(
                    UserRow.id.in_(chunk), UserRow.unsubscribed_at.is_not(None))).scalars())
            return found

    def set_unsubscribed(self, user_id: int, unsubscribed: bool) -> bool:
        """Returns whether anything changed."""
        with self.store.write() as conn:
            condition = UserRow.unsubscribed_at.is_(None) if unsubscribed else UserRow.unsubscribed_at.is_not(None)
            return bool(conn.execute(update(UserRow).where(and_(UserRow.id == user_id, condition)).values(
                unsubscribed_at=utcnow() if unsubscribed else None)).rowcount)
