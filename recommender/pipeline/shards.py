"""Ranking and rendering split by readers: a worker claims a shard of the readers the scheduler
found due (``store.schedule``, under a lease: a dead worker's shard is claimed again), builds
and stores their digests in the outbox, and records the shard's run with one statement. No
reader gets two digests for one run: a digest covers the batches after the reader's last
queued one, so the readers of a reclaimed shard whose digest the dead worker already stored
have nothing new."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import timedelta

from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, UserConfig
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
from recommender.store import Store
from recommender.store.lease_owners import new_owner
from recommender.store.schedule import ReaderSchedule

log = logging.getLogger(__name__)
SHARD_READERS = 1_000  # a few seconds of one core: shards spread evenly over workers
SHARD_LEASE = timedelta(minutes=10)


class ShardBuilder:
    """Builds shards of due readers until none is left (one worker's share of a run)."""

    def __init__(self, config: Config, store: Store, clock: Clock, readers: int = SHARD_READERS,
                 lease: timedelta = SHARD_LEASE):
        self.config, self.store, self.clock = config, store, clock
        self.readers, self.lease = readers, lease
        self.schedule = ReaderSchedule(store)
        self._by_email: dict[str, UserConfig] | None = None

    @property
    def by_email(self) -> dict[str, UserConfig]:
        if self._by_email is None:
            self._by_email = {u.email.lower(): u for u in self.config.users}
        return self._by_email

    def build_one(self) -> int | None:
        """Claim one shard and queue its readers' digests; returns how many were queued, None
        when no reader is owed a run."""
        owner = new_owner()
        claimed = self.schedule.claim(owner, self.lease, self.readers, self.clock())
        if not claimed:
            return None
        users = [self.by_email[email.lower()] for _, email in claimed if email.lower() in self.by_email]
        gone = [uid for uid, email in claimed if email.lower() not in self.by_email]
        if gone:
            self.schedule.drop(gone)  # no longer configured (this worker's config may be older: SIGHUP it too)
        ids = ReaderIds({email.lower(): uid for uid, email in claimed})
        results = queue_digests(DigestWork(self.config, self.store, self.clock), users, ids=ids) if users else {}
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


def work(config: Config, store: Store, concurrency: int, once: bool, stop: threading.Event,
         poll_seconds: float = 1.0, lease: timedelta = LEASE, clock: Clock | None = None,
         shard_readers: int = SHARD_READERS) -> int:
    """A worker: build the digests of shards of due readers (and the webhook posts they owe), and
    send pending digests from the shared outbox (SKIP LOCKED on PostgreSQL, a lease everywhere)
    over ``concurrency`` connections, and pending posts, until stopped (or, with ``once``, until nothing is left). Returns how many it
    sent."""
    clock = clock or system_clock
    config = replace(config, smtp=replace(config.smtp, max_connections=concurrency))
    owner = new_owner()
    builder = ShardBuilder(config, store, clock, shard_readers)
    sent = 0
    log.info("worker %s started (concurrency %d)", owner, concurrency)
    while not stop.is_set():
        built = builder.build_one()
        outcomes = deliver_pending(DigestWork(config, store, clock), claiming=Claiming(
            owner=owner, batch_size=concurrency * 2, lease=lease, stop=stop))
        sent += sum(o.status == "sent" for o in outcomes)
        for outcome in outcomes:
            if outcome.status != "sent":
                log.warning("digest %d %s after %d attempt(s): %s", outcome.digest_id, outcome.status,
                            outcome.attempts, outcome.detail)
        posted = channels.deliver_posts(config, store, clock)
        if built is None and not outcomes and not posted:
            if once:
                break
            stop.wait(poll_seconds)
    log.info("worker %s stopped after sending %d digest(s)", owner, sent)
    return sent
