"""Ranking and rendering split by readers: a worker claims a shard of the readers the scheduler
found due (``store.schedule``, under a lease: a dead worker's shard is claimed again), builds
and stores their digests in the outbox, and records the shard's run with one statement. No
reader gets two digests for one run: a digest covers the batches after the reader's last
queued one, so the readers of a reclaimed shard whose digest the dead worker already stored
have nothing new."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta

from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config
from recommender.base.domain import ReaderIds
from recommender.pipeline import channels
from recommender.pipeline.digests import (
    LEASE,
    Claiming,
    DigestWork,
    deliver_pending,
    queue_digests,
    signer_for,
)
from recommender.pipeline.reader_directory import ReaderDirectory
from recommender.store import Store
from recommender.store.lease_owners import new_owner
from recommender.store.outbox import Outbox
from recommender.store.schedule import ReaderSchedule

log = logging.getLogger(__name__)
SHARD_READERS = 1_000  # a few seconds of one core: shards spread evenly over workers
SHARD_LEASE = timedelta(minutes=10)
HOUSEKEEP_SECONDS = 60.0  # how often a worker marks unsubscribed readers' digests and frees dead holders' leases


class ShardBuilder:
    """Builds shards of due readers until none is left (one worker's share of a run)."""

    def __init__(self, config: Config, store: Store, clock: Clock, readers: int = SHARD_READERS,
                 lease: timedelta = SHARD_LEASE):
        self.config, self.store, self.clock = config, store, clock
        self.readers, self.lease = readers, lease
        self.schedule = ReaderSchedule(store)
        self.directory = ReaderDirectory(config, store)

    def build_one(self) -> int | None:
        """Claim one shard and queue its readers' digests; returns how many were queued, None
        when no reader is owed a run."""
        owner = new_owner()
        claimed = self.schedule.claim(owner, self.lease, self.readers, self.clock())
        if not claimed:
            return None
        users = self.directory.claimed(self.schedule, claimed)
        ids = ReaderIds({email.lower(): uid for uid, email in claimed})
        # A worker ranks with the models the last refit stored (it never reads every star).
        results = (queue_digests(DigestWork(self.config, self.store, self.clock), users, ids=ids, counted=False)
                   if users else {})
        channels.queue_posts(self.config, self.store, signer_for(self.config, self.clock), self.clock)
        self.schedule.finish(owner, self.clock())
        queued = sum(r.status == "queued" for r in results.values())
        log.info("shard of %d reader(s): %d digest(s) queued", len(claimed), queued)
        return queued

    def build_all(self, stop: threading.Event) -> int:
        built = 0
        while not stop.is_set():
            queued = self.build_one()
            if queued is None:
                break
            built += queued
        return built


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs: ``concurrency`` SMTP connections, ``once`` (stop when nothing is left),
    seconds between looks at an empty queue, the lease on claimed digests, readers per shard."""

    concurrency: int = 4
    once: bool = False
    poll_seconds: float = 1.0
    lease: timedelta = LEASE
    shard_readers: int = SHARD_READERS


def work(config: Config, store: Store, stop: threading.Event, options: WorkerOptions = WorkerOptions(),
         clock: Clock | None = None) -> int:
    """A worker: build the digests of shards of due readers (and the webhook posts they owe; each shard's readers'
    settings read from the database, so a worker's memory does not grow with their number), and
    send pending digests from the shared outbox (SKIP LOCKED on PostgreSQL, a lease everywhere)
    over ``options.concurrency`` connections, and pending posts, until stopped (or, with
    ``options.once``, until nothing is left). Returns how many it sent."""
    clock = clock or system_clock
    concurrency, once, poll_seconds, lease = options.concurrency, options.once, options.poll_seconds, options.lease
    shard_readers = options.shard_readers
    config = replace(config, smtp=replace(config.smtp, max_connections=concurrency))
    owner = new_owner()
    builder = ShardBuilder(config, store, clock, shard_readers)
    outbox = Outbox(store)
    sent, housekept, dead, idle = 0, -HOUSEKEEP_SECONDS, [], False
    log.info("worker %s started (concurrency %d)", owner, concurrency)
    while not stop.is_set():
        built = builder.build_one()
        # Unsubscribes and dead holders' leases read every pending digest: once a minute, not
        # once a turn (a turn per 1,000 digests made it 2 ms of PostgreSQL a digest at 100,000),
        # and again before a turn that found nothing is believed.
        fresh = idle or time.monotonic() - housekept >= HOUSEKEEP_SECONDS
        if fresh:
            dead, housekept = outbox.housekeep(clock()), time.monotonic()
        # A turn of at most a shard's worth of digests: then the next shard is built, and the
        # outcomes kept in memory stay as few (one call draining 100,000 kept them all).
        outcomes = deliver_pending(DigestWork(config, store, clock), claiming=Claiming(
            owner=owner, batch_size=concurrency * 2, lease=lease, stop=stop, most=shard_readers, dead=dead))
        sent += sum(o.status == "sent" for o in outcomes)
        for outcome in outcomes:
            if outcome.status != "sent":
                log.warning("digest %d %s after %d attempt(s): %s", outcome.digest_id, outcome.status,
                            outcome.attempts, outcome.detail)
        posted = channels.deliver_posts(config, store, clock)
        idle = built is None and not outcomes and not posted
        if idle and fresh:
            if once:
                break
            stop.wait(poll_seconds)
    log.info("worker %s stopped after sending %d digest(s)", owner, sent)
    return sent
