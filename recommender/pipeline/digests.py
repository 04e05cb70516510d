"""One digest run: for each user choose the new entries and store the digest (its entries,
Message-ID and date) in the outbox (pending) before any network call, then deliver everything
pending, each message rendered from what is stored as it is sent.

A user's digest covers the batches ingested after their last queued (pending or sent)
digest; a user's first digest covers the most recent ingest run only.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from threadpoolctl import threadpool_limits

import recommender.pipeline as pipeline
from recommender.base import parallel
from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, UserConfig
from recommender.base.domain import Paper, ReaderIds, Recommendation
from recommender.base.link_signing import LinkSigner
from recommender.delivery.smtp import (
    Outcome,
    check_credentials,
)
from recommender.digest import render as digest
from recommender.digest.message import build_message, dkim_key, dkim_signed, make_message_id
from recommender.digest.states import UserResult, owed_states
from recommender.digest.stored import message_for, stored_picks
from recommender.pipeline import channels
from recommender.pipeline.delivering import (
    LEASE,
    Claiming,
    DeliveryProcess,
    DigestWork,
    deliver_pending,
    message_of,
    signer_for,
)
from recommender.store import Store
from recommender.store.outbox import DigestToCreate, NewDigest, Outbox, StoredEntry
from recommender.store.run_readers import RunReaders
from recommender.store.store import utcnow

__all__ = ["LEASE", "Claiming", "DeliveryProcess", "DigestWork", "deliver_pending", "enqueue", "message_of", "preview",
           "queue_digests", "run", "signer_for"]
log = logging.getLogger(__name__)
CREATE_GROUP = 25  # digests stored per transaction (short enough not to keep other writers waiting)


@dataclass(frozen=True)
class _Building:
    """One part's ranking and storing of digests (threaded through instead of a long list)."""

    work: DigestWork
    models: pipeline.Models
    signer: LinkSigner
    ids: ReaderIds
    dry_run: bool
    # Render each message as it is stored (`digest send` with a delivering child): the parts
    # render on both cores while the child sends; else the sender renders it (bench/RESULTS.md, digest run).
    render: bool = False


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


def queue_digests(work: DigestWork, users: Sequence[UserConfig], *, dry_run: bool = False, chunk: int = 500,
                  ids: ReaderIds | None = None, parallel_parts: bool = False,
                  render: bool = False, counted: bool = True) -> dict[str, UserResult]:
    """Build and store (pending) each user's next digest; returns what happened per user.
    Users who are owed the same batches are ranked together, ``chunk`` at a time, and each
    digest is stored as soon as it is rendered (memory stays flat in the number of users).
    With ``parallel_parts``, many users are split between worker processes (see base.parallel)
    that each rank, render and store their part (ranking and rendering are Python-bound: one
    process uses one core). With ``render``, each message is rendered and stored with its
    digest (the same bytes the sender would render; deleted once sent). Without ``counted``,
    with the models the last refit stored (see ``pipeline.load_models``)."""
    started = time.monotonic()
    store = work.store
    ids = ids if ids is not None else store.sync_users(u.email for u in users)  # (lower-case email -> id)
    building = _Building(work, pipeline.load_models(store, work.config, counted), work.signer(), ids, dry_run, render)
    outbox = Outbox(store)
    unsubscribed = outbox.unsubscribed([ids.of(u.email) for u in users])
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
            here = building if on is store else replace(building, work=replace(work, store=on))
            for start in range(0, len(members), chunk):
                part_results.update(_queue_chunk(here, members[start:start + chunk], batch_ids, candidates,
                                                 work.clock()))
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
    results = list(queue_digests(DigestWork(config, store, clock), users, parallel_parts=True).values())
    channels.queue_posts(config, store, signer_for(config, clock), clock)
    return results


def _queue_chunk(building: _Building, users: Sequence[UserConfig], batch_ids: tuple[int, ...],
                 candidates: list[Paper], now: datetime) -> dict[str, UserResult]:
    """Rank ``candidates`` for these users (owed the same batches) and store their digests:
    what they are (entries, Message-ID, subject, date); the message is rendered when sent."""
    config, store, ids, dry_run = building.work.config, building.work.store, building.ids, building.dry_run
    picks = pipeline.rank_users(pipeline.Ranking(config, store, building.models, now), users, candidates, None)
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
                _identity(building, user, user_picks, now),
                channels.digest_channels(user), [r.topic or None for r in user_picks] if user.topics else (), now))
    outbox = Outbox(store)
    for group in range(0, len(ready), CREATE_GROUP):
        outbox.create_many(ready[group:group + CREATE_GROUP])
    return results


def _identity(building: _Building, user: UserConfig, picks: list[Recommendation],
              now: datetime) -> Callable[[int], NewDigest]:
    """The digest's subject and Message-ID, once its id (which the Message-ID carries) is known,
    and with ``building.render`` its message, rendered from the picks as they are stored."""
    config, user_id = building.work.config, building.ids.of(user.email)
    subject = digest.digest_subject(user, picks, now)
    if not building.render:
        return lambda digest_id: NewDigest(subject, make_message_id(digest_id, user_id, config.smtp.sender))
    stored = stored_picks(user, [StoredEntry(i, r.paper.id, r.score, r.explanation.sentence(), r.match, r.topic)
                                 for i, r in enumerate(picks)], {r.paper.id: r.paper for r in picks})

    def rendered(digest_id: int) -> NewDigest:
        message_id = make_message_id(digest_id, user_id, config.smtp.sender)
        return NewDigest(subject, message_id,
                         message_for(config, building.signer, user, user_id, digest_id, message_id, stored, now))
    return rendered


def run(config: Config, store: Store, users: Sequence[UserConfig], clock: Clock | None = None,
        dry_run: bool = False, deliver_while_queueing: bool = False) -> list[UserResult]:
    """`digest send`: queue each user's digest, then deliver all pending ones for these users,
    and report where each user's owed digest stands. With ``deliver_while_queueing`` (the
    command, where ``parallel.can_fork()``), a child process delivers what is queued while this
    one renders the rest, and many users are split between worker processes (``--jobs``).
    Only one process sends at a time, so ``smtp.max_connections`` caps the whole run."""
    clock = clock or system_clock
    work = DigestWork(config, store, clock)
    if dry_run:
        return list(queue_digests(work, users, dry_run=True).values())
    check_credentials(config.smtp)
    signer_for(config, clock)  # a missing secret fails before anything is stored or sent
    started = utcnow()
    ids = store.sync_users(u.email for u in users)
    with RunReaders(store, list(ids.values())) as user_ids:  # claims name the run, not every reader's id
        background = DeliveryProcess(work, user_ids) if deliver_while_queueing else None
        try:
            # With the child delivering on the other core, BLAS threads would only wait for (and take) it.
            with threadpool_limits(limits=1, user_api="blas") if background is not None else contextlib.nullcontext():
                results = queue_digests(work, users, ids=ids, parallel_parts=background is not None,
                                        render=background is not None)
        except BaseException:
            if background is not None:
                background.finish()  # what was queued still goes out (or, on Ctrl-C, the child stops too)
            raise
        outcomes: list[Outcome] = []
        if background is not None:
            outcomes += background.finish()  # raises DeliveryAborted if the child met a refused login
        outcomes += deliver_pending(work, user_ids)  # all of it, or what a child that died left
    channels.queue_posts(config, store, signer_for(config, clock), clock)  # this run's, and any a stopped run owed
    channels.deliver_posts(config, store, clock)
    notes = channels.channel_notes(config, store, users, ids, started)
    return [replace(line, channels=notes.get(line.email, ""))
            for line in owed_states(store, users, ids, results, started, {o.digest_id for o in outcomes}, clock())]
