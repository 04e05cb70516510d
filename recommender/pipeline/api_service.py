"""The methods of ``recommender.Recommender`` that run or look after an install rather than a
reader's papers: creating the database, checking the sources, the outbox and feedback log,
private feed URLs, the feedback endpoint, queue workers and the daemon's scheduled runs.
They are a mixin of ``Recommender`` (``recommender.pipeline.api``), documented in docs/API.md."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from recommender.base.config import DeliveryMode, masked_url
from recommender.base.link_signing import check_secret
from recommender.pipeline.api_results import Deliveries, Initialised, NextDigest, Retried
from recommender.pipeline.schedules import ReaderSchedules
from recommender.store.channel_posts import ChannelPosts
from recommender.store.feedback import FeedbackEvent, FeedbackLog
from recommender.store.outbox import Outbox

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from recommender.base.clock import Clock
    from recommender.base.config import Config
    from recommender.base.link_signing import LinkSigner
    from recommender.digest.states import UserResult
    from recommender.store import Store
    from recommender.store.daemon_lock import DaemonLock


class InstallMethods:
    """Running an install (mixed into ``Recommender``, which gives what is declared here)."""

    if TYPE_CHECKING:
        config: Config
        clock: Clock

        @property
        def database(self) -> Store: ...

        @property
        def store(self) -> Store: ...

        @property
        def signer(self) -> LinkSigner: ...

        def _refit(self) -> None: ...

    def init(self) -> Initialised:
        """Create the database, or upgrade it to the newest schema (safe to run again), store
        the readers and their next runs, and make its files owner-only.

        Example: ``Recommender.open("config.toml").init().schema``"""
        database = self.database
        before, after = database.upgrade_schema()
        ReaderSchedules(self.config, database).sync(self.clock())  # readers and their next runs, in bulk
        return Initialised(before, after, masked_url(self.config.database.url), database.tighten_permissions())

    def failing_sources(self) -> list[str]:
        """A warning for each configured source whose last fetches failed.

        Example: ``rec.failing_sources()``"""
        # on use: it imports the HTTP client
        from recommender.pipeline.fetching import failing_sources

        return failing_sources(self.config, self.store) if self.config.sources else []

    # -- deliveries -----------------------------------------------------------------------
    def outbox(self, status: str | None = None) -> Deliveries:
        """The stored digests and webhook posts, optionally only those with ``status``.

        Example: ``len(rec.outbox("failed").digests)``"""
        return Deliveries(Outbox(self.store).items(status), ChannelPosts(self.store).items(status))

    def retry(self) -> Retried:
        """Requeue failed and deferred deliveries, digests and webhook posts (not a digest a
        newer one superseded), and send what is due.

        Example: ``rec.retry().sent``"""
        from recommender.pipeline import channels, digests

        requeued = Outbox(self.store).requeue_failed() + ChannelPosts(self.store).requeue_failed()
        outcomes = digests.deliver_pending(digests.DigestWork(self.config, self.store, self.clock))
        return Retried(requeued, outcomes, channels.deliver_posts(self.config, self.store, self.clock))

    def feedback(self, email: str | None = None) -> list[FeedbackEvent]:
        """The recorded feedback clicks (more, less, open) of one reader or of everyone, oldest first.

        Example: ``[e.action for e in rec.feedback("ada@example.org")]``"""
        user_id = self.store.user_id(self.config.user(email).email) if email else None
        return FeedbackLog(self.store).events(user_id)

    def feed_url(self, email: str, rotate: bool = False) -> str:
        """A reader's private Atom feed URL; with ``rotate`` a new one (the old answers 404).

        Example: ``rec.feed_url("ada@example.org")``"""
        from recommender.pipeline import channels

        return channels.feed_url(self.config, self.store, self.signer, self.config.user(email), rotate)

    # -- schedules ------------------------------------------------------------------------
    def schedules(self) -> ReaderSchedules:
        """The readers' schedules under the current config, in the database: what the daemon's
        ticks sync, settle, enqueue and claim in shards (a config reload takes a new one).

        Example: ``rec.schedules().next_runs()["ada@example.org"]``"""
        return ReaderSchedules(self.config, self.store)

    def next_digests(self) -> list[NextDigest]:
        """Each configured reader's next digest time, in their zone, as the daemon schedules it
        (before any daemon ran too).

        Example: ``[(d.user.email, d.at) for d in rec.next_digests()]``"""
        return self.schedules().describe(self.clock())

    def daemon_lock(self) -> DaemonLock:
        """The database's one-daemon lock: ``acquire(standby)`` takes it (or raises
        ``DaemonRunning``; with a standby event, on PostgreSQL, waits for it), ``release()``
        gives it back.

        Example: ``rec.daemon_lock().acquire()``"""
        from recommender.store.daemon_lock import DaemonLock

        return DaemonLock(self.store)

    # -- long-running ---------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 8080, workers: int = 1) -> None:
        """Serve the feedback endpoint until SIGTERM or SIGINT (the secret checked first).

        Example: ``rec.serve(port=8080)``"""
        from recommender.pipeline import serving

        check_secret(self.config.feedback.secret, self.config.feedback.secret_env)
        serving.serve(self.config, self.store, host, port, workers)

    def web_app(self) -> ASGIApp:
        """The feedback endpoint as an ASGI app over this install (what ``serve`` runs): the
        links of its digests and feeds record clicks, unsubscribe, show a digest, answer a feed.

        Example: ``TestClient(rec.web_app()).get("/")``"""
        from recommender.pipeline.web_site import web_app

        return web_app(self.config, self.store, self.clock)

    def work(self, concurrency: int = 4, once: bool = False, stop: threading.Event | None = None,
             poll_seconds: float = 1.0, lease: timedelta = timedelta(minutes=10), shard_readers: int = 1000) -> int:
        """Build the digests of shards of due readers and send pending digests from the shared
        outbox until ``stop`` is set (or, ``once``, the queue is empty); returns how many were sent.

        Example: ``rec.work(once=True)``"""
        from recommender.pipeline import shards

        options = shards.WorkerOptions(concurrency, once, poll_seconds, lease, shard_readers)
        return shards.work(self.config, self.store, stop or threading.Event(), options)

    def check_delivery(self) -> None:
        """Refuse, before a daemon starts, a missing link secret or an SMTP login that can only
        fail or leak (direct delivery only)."""
        from recommender.pipeline import digests

        if self.config.delivery.mode == DeliveryMode.DIRECT:
            digests.signer_for(self.config, self.clock)
            digests.check_credentials(self.config.smtp)

    def fetch_stale(self) -> int:
        """Pull the configured sources whose fetch window has passed, refitting the models on
        new papers (the daemon's first step of a run); returns how many new papers came.

        Example: ``rec.fetch_stale()``"""
        from recommender.pipeline.fetching import Fetcher

        if not self.config.sources:
            return 0
        fetcher = Fetcher(self.config, self.store, clock=self.clock)
        stale = fetcher.stale()
        fresh = sum(o.new_papers for o in fetcher.fetch(stale)) if stale else 0
        if fresh:
            self._refit()
        return fresh

    def scheduled_run(self, emails: Sequence[str]) -> list[UserResult]:
        """A run for these readers as the daemon does it: pull the stale sources (refitting on
        new papers), then build and send their digests (in queue mode: enqueue them for workers).

        Example: ``[r.line() for r in rec.scheduled_run(["ada@example.org"])]``"""
        from recommender.base import parallel
        from recommender.pipeline import digests

        users = [self.config.user(e) for e in emails]
        self.fetch_stale()
        if self.config.delivery.mode == DeliveryMode.QUEUE:
            return digests.enqueue(self.config, self.store, users, self.clock)
        return digests.run(self.config, self.store, users, self.clock, deliver_while_queueing=parallel.can_fork())
