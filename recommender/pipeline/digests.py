"""One digest run: for each user choose the new entries, render them, store the message in
the outbox (pending) before any network call, then deliver everything pending.

A user's digest covers the batches ingested after their last queued (pending or sent)
digest; a user's first digest covers the most recent ingest run only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from threadpoolctl import threadpool_limits

import recommender.pipeline as pipeline
from recommender.base import parallel
from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, UserConfig
from recommender.base.domain import Paper, ReaderIds, Recommendation
from recommender.base.link_signing import LinkSigner, check_secret
from recommender.delivery.smtp import (
    DeliveryAborted,
    Outcome,
    Outgoing,
    SmtpSender,
    check_credentials,
    settings_fingerprint,
)
from recommender.digest import render as digest
from recommender.digest.message import build_message, dkim_key, dkim_signed, make_message_id
from recommender.digest.states import UserResult, owed_states
from recommender.pipeline import channels
from recommender.store import Store
from recommender.store.group_commit import GroupCommit
from recommender.store.lease_owners import new_owner
from recommender.store.outbox import DigestToCreate, NewDigest, Outbox, Readers
from recommender.store.run_readers import RunReaders
from recommender.store.store import utcnow

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=10)
CREATE_GROUP = 25  # digests stored per transaction (short enough not to keep other writers waiting)


class Waitable(Protocol):
    """A threading or multiprocessing Event."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def signer_for(config: Config, clock: Clock) -> LinkSigner:
    return LinkSigner(check_secret(config.feedback.secret, config.feedback.secret_env), clock)


def owed_batches(store: Store, outbox: Outbox, user_ids: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """The batches each user's next digest covers: those after their last queued (pending or
    sent) digest, or, for a first digest, the most recent ingest run only."""
    last = outbox.last_queued_batches(user_ids)
    latest, every = tuple(store.latest_run_batch_ids()), store.all_batch_ids()
    return {uid: latest if uid not in last else tuple(b for b in every if b > last[uid]) for uid in user_ids}


def render_for(config: Config, user: UserConfig, picks: list[Recommendation], links: digest.Links,
               now: datetime, web: bool = False) -> digest.RenderedDigest:
    return digest.render(digest.context(config, user, picks, links, now, web=web))


def preview(config: Config, store: Store, user: UserConfig, clock: Clock,
            ) -> tuple[digest.RenderedDigest, int, bytes] | None:
    """The user's next digest, rendered and as the message that would be sent (DKIM-signed when
    configured), without storing or sending anything; None when there is nothing new to send
    (no digest would go out, as `digest send` says: rendering none would show an empty,
    unpersonalized digest that is never sent)."""
    now = clock()
    user_id = store.user_id(user.email)
    batch_ids = owed_batches(store, Outbox(store), [user_id])[user_id]
    picks: list[Recommendation] = []
    if batch_ids:
        candidates = store.batch_papers(batch_ids)
        ranking = pipeline.Ranking(config, store, pipeline.load_models(store, config), now)
        picks = pipeline.rank_users(ranking, [user], candidates, None)[user.email]
    if not picks:
        return None
    secret = config.feedback.secret or secrets.token_urlsafe(32)  # preview links need not verify
    links = digest.Links(config.feedback.base_url, LinkSigner(secret, clock), user_id, 0)
    rendered = render_for(config, user, picks, links, now)
    message = build_message(config.smtp, user, rendered, make_message_id(0, user_id, config.smtp.sender),
                            links.unsubscribe(), config.feedback.unsubscribe_mailto, now)
    return rendered, len(picks), dkim_signed(config.smtp, dkim_key(config.smtp), message)


def queue_digests(config: Config, store: Store, users: Sequence[UserConfig], clock: Clock,
                  dry_run: bool = False, chunk: int = 500, ids: ReaderIds | None = None,
                  parallel_parts: bool = False) -> dict[str, UserResult]:
    """Build and store (pending) each user's next digest; returns what happened per user.
    Users who are owed the same batches are ranked together, ``chunk`` at a time, and each
    digest is stored as soon as it is rendered (memory stays flat in the number of users).
    With ``parallel_parts``, many users are split between worker processes (see base.parallel)
    that each rank, render and store their part (ranking and rendering are Python-bound: one
    process uses one core)."""
    started = time.monotonic()
    signer = signer_for(config, clock)
    models = pipeline.load_models(store, config)
    ids = ids if ids is not None else store.sync_users(u.email for u in users)  # (lower-case email -> id)
    outbox = Outbox(store)
    unsubscribed = outbox.unsubscribed()
    results: dict[str, UserResult] = {}
    active = []
    for user in users:
        if ids.of(user.email) in unsubscribed:
            results[user.email] = UserResult(user.email, "unsubscribed")
        else:
            active.append(user)

    def queue_part(part: Sequence[UserConfig], on: Store = store) -> dict[str, UserResult]:
        # Read here, not before the fork: if the child dies, this process does its half, and
        # the digests the child stored already count.
        owed = owed_batches(on, Outbox(on), [ids.of(u.email) for u in part])
        part_results: dict[str, UserResult] = {}
        groups: dict[tuple[int, ...], list[UserConfig]] = {}
        for user in part:
            groups.setdefault(owed[ids.of(user.email)], []).append(user)
        for batch_ids, members in groups.items():
            if not batch_ids:
                part_results.update({u.email: UserResult(u.email, "nothing new") for u in members})
                continue
            candidates = on.batch_papers(batch_ids)
            for start in range(0, len(members), chunk):
                part_results.update(_queue_chunk(config, on, models, signer, members[start:start + chunk], ids,
                                                 batch_ids, candidates, clock(), dry_run))
        return part_results

    def child_part(part: Sequence[UserConfig]) -> dict[str, UserResult]:
        with store.for_forked_child() as own:
            return queue_part(part, own)

    parts = pipeline.user_parts(len(active)) if parallel_parts else 1
    if parts > 1:
        log.info("queueing the digests of %d users in %d processes", len(active), parts)
        for part_results in parallel.in_parts(queue_part, active, parts, child_part):
            results.update(part_results)
    else:
        results.update(queue_part(active))
    log.info("queued %d digest(s) in %.1fs", sum(r.status == "queued" for r in results.values()),
             time.monotonic() - started)
    return {u.email: results[u.email] for u in users}


def enqueue(config: Config, store: Store, users: Sequence[UserConfig], clock: Clock) -> list[UserResult]:
    """`delivery.mode = "queue"`: store these users' digests and the webhook posts they owe;
    `worker` processes deliver both."""
    results = list(queue_digests(config, store, users, clock, parallel_parts=True).values())
    channels.queue_posts(config, store, signer_for(config, clock), clock)
    return results


def _queue_chunk(config: Config, store: Store, models: pipeline.Models, signer: LinkSigner,
                 users: Sequence[UserConfig], ids: ReaderIds, batch_ids: tuple[int, ...],
                 candidates: list[Paper], now: datetime, dry_run: bool) -> dict[str, UserResult]:
    """Rank ``candidates`` for these users (owed the same batches) and store their digests."""
    picks = pipeline.rank_users(pipeline.Ranking(config, store, models, now), users, candidates, None)
    results: dict[str, UserResult] = {}
    ready: list[DigestToCreate] = []
    for user in users:
        user_picks = picks[user.email]
        if not user_picks:
            results[user.email] = UserResult(user.email, "nothing new")
            continue
        results[user.email] = UserResult(user.email, "would send" if dry_run else "queued", len(user_picks))
        if not dry_run:
            ready.append(DigestToCreate(
                ids.of(user.email), max(batch_ids),
                [(r.paper.id, r.score, r.explanation.sentence(), r.match) for r in user_picks],
                _renderer(config, signer, user, ids.of(user.email), user_picks, now),
                channels.digest_channels(user), [r.topic or None for r in user_picks] if user.topics else ()))
    outbox = Outbox(store)
    for group in range(0, len(ready), CREATE_GROUP):
        outbox.create_many(ready[group:group + CREATE_GROUP])
    return results


def _renderer(config: Config, signer: LinkSigner, user: UserConfig, user_id: int, picks: list[Recommendation],
              now: datetime) -> Callable[[int], NewDigest]:
    """The digest's message, once its id (which its links and Message-ID carry) is known."""

    def render(digest_id: int) -> NewDigest:
        links = digest.Links(config.feedback.base_url, signer, user_id, digest_id)
        rendered = render_for(config, user, picks, links, now)
        message_id = make_message_id(digest_id, user_id, config.smtp.sender)
        message = build_message(config.smtp, user, rendered, message_id, links.unsubscribe(),
                                config.feedback.unsubscribe_mailto, now)
        return NewDigest(rendered.subject, message_id, message)

    return render


def deliver_pending(config: Config, store: Store, clock: Clock, user_ids: Readers | None = None,
                    owner: str | None = None, batch_size: int = 50, lease: timedelta = LEASE,
                    stop: threading.Event | _ParentGone | None = None, more: Waitable | None = None,
                    poll_seconds: float = 0.2) -> list[Outcome]:
    """Send every due pending digest (older ones first), recording each outcome as it comes.
    With ``more`` (set once another process has queued everything), an empty outbox is polled
    every ``poll_seconds`` until it is set. The connections stay open from one claimed batch to
    the next, and the next is claimed while they send the last messages of this one."""
    outbox = Outbox(store)
    owner = owner or new_owner()
    sender = SmtpSender(config.smtp)
    outcomes: list[Outcome] = []
    smtp_settings = settings_fingerprint(config.smtp)
    made_due = outbox.retry_if_settings_changed(smtp_settings)
    if made_due:
        log.info("the SMTP settings changed: %d deferred digest(s) are tried now", made_due)

    def write(batch: Sequence[Outcome]) -> list[None]:
        # Deferred ones wait smtp.retry_delay_seconds (a later run, or `outbox retry` at once),
        # unless the SMTP settings change before.
        outbox.record_outcomes(batch, clock() + timedelta(seconds=config.smtp.retry_delay_seconds), smtp_settings)
        return [None] * len(batch)

    # Each connection waits until its outcome is stored before sending its next message (so a
    # crash re-sends only what was in flight), while the outcomes of all connections are
    # committed together.
    recorder: GroupCommit[Outcome, None] = GroupCommit(write)

    async def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        await asyncio.wrap_future(recorder.enqueue(outcome))

    async def batches() -> AsyncIterator[list[Outgoing]]:
        while stop is None or not stop.is_set():
            handled = {o.digest_id for o in outcomes}
            final = more is None or more.is_set()  # read before the claim: nothing is queued after it is set
            claimed = await asyncio.to_thread(claim, handled)
            if claimed:
                yield claimed
            elif final:
                return
            else:
                await asyncio.to_thread(more.wait, poll_seconds)  # type: ignore[union-attr]  # (final when None)  # the connections stay open meanwhile

    dead = outbox.housekeep(clock())  # unsubscribes and dead senders' leases: once for the run's claims

    def claim(handled: set[int]) -> list[Outgoing]:
        claimed = outbox.claim(owner, lease, batch_size, user_ids, now=clock(), dead=dead)
        again = [c[0] for c in claimed if c[0] in handled]
        if again:
            outbox.release(again)
        return [Outgoing(i, to, msg) for i, to, msg, _ in claimed if i not in handled]

    started = time.monotonic()
    try:
        asyncio.run(sender.send_stream(batches(), record))
    except DeliveryAborted:
        recorder.close()
        outbox.release_owner(owner)  # nothing was tried: the next run sends them
        raise
    finally:
        recorder.close()
    if outcomes:
        log.info("delivered %d digest(s) in %.1fs", sum(o.status == "sent" for o in outcomes),
                 time.monotonic() - started)
    return outcomes


def run(config: Config, store: Store, users: Sequence[UserConfig], clock: Clock | None = None,
        dry_run: bool = False, deliver_while_queueing: bool = False) -> list[UserResult]:
    """`digest send`: queue each user's digest, then deliver all pending ones for these users,
    and report where each user's owed digest stands. With ``deliver_while_queueing`` (the
    command, where ``parallel.can_fork()``), a child process delivers what is queued while this
    one renders the rest, and many users are split between worker processes (``--jobs``).
    Only one process sends at a time, so ``smtp.max_connections`` caps the whole run."""
    clock = clock or system_clock
    if dry_run:
        return list(queue_digests(config, store, users, clock, dry_run=True).values())
    check_credentials(config.smtp)
    signer_for(config, clock)  # a missing secret fails before anything is stored or sent
    started = utcnow()
    ids = store.sync_users(u.email for u in users)
    with RunReaders(store, list(ids.values())) as user_ids:  # claims name the run, not every reader's id
        background = DeliveryProcess(config, store, clock, user_ids) if deliver_while_queueing else None
        try:
            # With the child delivering on the other core, BLAS threads would only wait for (and take) it.
            with threadpool_limits(limits=1, user_api="blas") if background is not None else contextlib.nullcontext():
                results = queue_digests(config, store, users, clock, ids=ids, parallel_parts=background is not None)
        except BaseException:
            if background is not None:
                background.finish()  # what was queued still goes out (or, on Ctrl-C, the child stops too)
            raise
        outcomes: list[Outcome] = []
        if background is not None:
            outcomes += background.finish()  # raises DeliveryAborted if the child met a refused login
        outcomes += deliver_pending(config, store, clock, user_ids)  # all of it, or what a child that died left
    channels.queue_posts(config, store, signer_for(config, clock), clock)  # this run's, and any a stopped run owed
    channels.deliver_posts(config, store, clock)
    notes = channels.channel_notes(config, store, users, ids, started)
    return [replace(line, channels=notes.get(line.email, ""))
            for line in owed_states(store, users, ids, results, started, {o.digest_id for o in outcomes}, clock())]


class DeliveryProcess:
    """A forked child that delivers the digests already queued while the parent ranks and
    renders the rest, so both cores work instead of one phase after the other. It polls the
    outbox until told everything is queued, delivers what is left, and reports its outcomes.
    Whatever it leaves (it died, or was killed) the parent delivers: its leases free as soon as
    its process is gone. It stops when the parent is gone."""

    POLL_SECONDS = 0.2

    def __init__(self, config: Config, store: Store, clock: Clock, user_ids: Readers):
        context = multiprocessing.get_context("fork")
        self._queued_all = context.Event()
        self._reports, reports = context.Pipe(duplex=False)
        self._process = context.Process(target=self._deliver, args=(config, store, clock, user_ids, reports),
                                        name="digest-delivery", daemon=True)
        self._process.start()
        reports.close()

    def everything_queued(self) -> None:
        """The child delivers what is pending and then stops."""
        self._queued_all.set()

    def finish(self) -> list[Outcome]:
        """The child's outcomes once it is done (none if it died); ``DeliveryAborted`` if the
        server refused its login or certificate."""
        self._queued_all.set()
        report: list[Outcome] | str = []
        while True:
            if self._reports.poll(0.1):
                with contextlib.suppress(EOFError):  # it died without reporting: the parent delivers the rest
                    report = self._reports.recv()
                break
            if not self._process.is_alive() and not self._reports.poll(0):
                break
        self._process.join()
        self._reports.close()
        if isinstance(report, str):
            raise DeliveryAborted(report)
        return report

    def _deliver(self, config: Config, parent_store: Store, clock: Clock, user_ids: Readers,
                 reports: multiprocessing.connection.Connection) -> None:  # in the child
        parent_gone = _ParentGone(os.getppid())
        parallel.die_with_parent(parent_gone.parent)  # never sends on, unrecorded, after the command is gone
        outcomes: list[Outcome] | str = []
        try:
            with parent_store.for_forked_child() as store:
                outcomes = deliver_pending(config, store, clock, user_ids, stop=parent_gone, more=self._queued_all,
                                           poll_seconds=self.POLL_SECONDS)
        except DeliveryAborted as exc:
            outcomes = exc.message
        finally:
            reports.send(outcomes)


class _ParentGone:
    """A stop flag that is set once the process that forked us has exited."""

    def __init__(self, parent: int):
        self.parent = parent

    def is_set(self) -> bool:
        return os.getppid() != self.parent
