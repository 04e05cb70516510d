"""The daemon behind `recommender run`. Readers and their next run live in the database
(``store.schedule``), synced from the config in bulk at start-up and on SIGHUP. Once a second
a tick reads the earliest next run from its index and, when readers are due, enqueues them all
with one statement and moves their next runs on (one statement per schedule rule). Owed readers
are then claimed in shards under a lease and each shard run in a fresh process
(``base.parallel.in_fresh_process``: the daemon runs threads, so it cannot fork): pull stale
sources, then build and send (or, in queue mode, enqueue) their digests, split between
``--jobs`` worker processes exactly as `digest send` does. A shard's run is recorded with one
statement. A run whose process dies is started again; every step of it is recorded, so the new
one only does what is left, and a daemon killed mid-run leaves its shard owed: the next one
claims it again. A restart sends one digest for a run missed within the grace period and skips
older ones. SIGHUP reloads the config; SIGTERM and SIGINT stop it cleanly (after the run in
progress)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from recommender.app import runtime
from recommender.base import parallel
from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, DeliveryMode, UserConfig, load_config
from recommender.pipeline.api import Recommender

if TYPE_CHECKING:
    from recommender.pipeline.api import UserResult
    from recommender.pipeline.api_results import Shard

log = logging.getLogger(__name__)
T = TypeVar("T")


class Daemon:
    TICK_SECONDS = 1.0  # how often the earliest next run is compared with the clock
    ATTEMPTS = 3  # a run whose process died is started again, at most this often
    SHARD_READERS = 10_000  # readers run in one fresh process
    LEASE = timedelta(minutes=30)  # a shard held longer than this (its daemon on another host died) is claimed again

    def __init__(self, config_path: Path, database_url: str | None = None, clock: Clock | None = None,
                 run_log_level: int | None = None, standby: bool = False):
        self.config_path = config_path
        self.standby = standby  # on PostgreSQL, wait for a running daemon's lock instead of refusing
        self.run_log_level = run_log_level  # of the runs' processes (None: this process's level)
        self.database_url = database_url
        self.clock = clock or system_clock
        self.config = load_config(config_path, database_url)
        self.api = Recommender(self.config, clock=self.clock)
        self.lock = self.api.daemon_lock()  # the database opened and its schema checked first
        self.api.check_delivery()  # a missing secret or a login that can only fail, before starting
        self.stopping = threading.Event()
        self.changing = threading.Lock()  # a reload's schedule changes and a tick take turns
        self.schedules = self.api.schedules()
        self.runner = threading.Thread(target=self._run_loop, name="digest-runner", daemon=True)

    @property
    def by_email(self) -> dict[str, UserConfig]:
        return self.schedules.by_email

    # -- schedules ------------------------------------------------------------------------------
    def schedule_jobs(self) -> None:
        """Store the schedules of new readers and of readers whose schedule changed, drop those
        no longer configured (also on SIGHUP), and settle runs missed while no daemon ran."""
        with self.changing:
            self.schedules.sync(self.clock())

    def next_runs(self) -> dict[str, datetime]:
        """email -> next run, of the configured readers."""
        return self.schedules.next_runs()

    def tick(self) -> int:
        """Enqueue every reader due now; returns how many."""
        now = self.clock()
        first = self.schedules.first_due()
        if first is None or first > now:
            return 0
        if self.config.delivery.mode == DeliveryMode.QUEUE and self.config.sources:
            # Workers build the digests: the papers they rank are fetched first, once for them all.
            self._in_fresh_process(fetch_stale, self.config)
        with self.changing:
            enqueued = self.schedules.settle(now, enqueue=True)
        if enqueued:  # once a run: what was sent keep_days ago goes
            self.schedules.prune_sent(now)
        return enqueued

    def _in_fresh_process(self, function: Callable[..., T], *args: object) -> T | None:
        """``function(*args, log_level)`` in a new process, started again if it dies (None if it
        kept dying or failed)."""
        level = self.run_log_level or logging.getLogger().getEffectiveLevel()
        for attempt in range(1, self.ATTEMPTS + 1):
            if attempt > 1 and self.stopping.is_set():
                return None  # stopped by a signal that reached the run's process too (Ctrl-C): restart does the rest
            log.info("%s in a new process (attempt %d)", function.__name__, attempt)
            try:
                return parallel.in_fresh_process(function, *args, level)
            except parallel.ProcessDied as exc:
                log.error("the digest run's process ended early (%s)%s", exc,
                          ": starting it again" if attempt < self.ATTEMPTS else "")
            except parallel.WorkFailed as exc:
                log.error("%s failed: %s", function.__name__, exc)
                return None
        return None

    # -- runs -----------------------------------------------------------------------------------
    def _run_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.tick()
                if self.config.delivery.mode != DeliveryMode.QUEUE:  # else workers claim the due readers
                    self.run_due()
            except Exception:  # noqa: BLE001 - one failed run must not stop the daemon's later ones
                log.exception("digest run failed")
            self.stopping.wait(self.TICK_SECONDS)

    def run_user(self, email: str) -> None:
        """Run this reader's digest now, or in queue mode owe it to them for a worker (the run
        stands for their next run if it is due)."""
        self.schedules.run_now(email, self.clock())
        if self.config.delivery.mode != DeliveryMode.QUEUE:
            self.run_due()

    def run_due(self) -> None:
        """Claim owed readers a shard at a time and run each shard, until none is left."""
        while not self.stopping.is_set():
            shard = self.schedules.claim(self.LEASE, self.SHARD_READERS, self.clock())
            if shard is None:
                return
            self.run_shard(shard)

    def run_shard(self, shard: Shard) -> None:
        """One run for these readers (in a fresh process): fetch what is stale, then their
        digests. Logs one line per reader and records the shard's run; a shard whose run failed
        stays owed (claimed again once its lease expires, or by the next daemon)."""
        started = time.monotonic()
        users = list(shard.readers)
        if not users:
            return
        log.info("digest run for %d user(s)", len(users))
        results = self._in_fresh_process(run_digests, self.config, users, parallel.jobs())
        if results is None:
            return
        self.schedules.finish(shard, self.clock())
        for result in results:
            log.info("%s", result.line())  # the line `digest send` prints
        log.info("digest run for %d user(s) done in %.1fs", len(results), time.monotonic() - started)

    # -- life cycle ----------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            config = load_config(self.config_path, self.database_url)
        except Exception as exc:  # keep running with the old config
            log.error("config reload failed, keeping the previous config: %s", exc)
            return
        with self.changing:
            self.config = self.api.config = config
            self.schedules = self.api.schedules()
        log.info("config reloaded: %d user(s)", len(self.config.users))
        self.schedule_jobs()

    def start(self) -> bool:
        """Take the database's daemon lock (``DaemonRunning`` if another daemon holds it; a
        standby waits for it, and returns False if stopped meanwhile), then schedule every user."""
        if not self.lock.acquire(self.stopping if self.standby else None):
            return False
        log.info("daemon started: config %s, %d user(s), %d source(s), delivery %s", self.config_path,
                 len(self.config.users), len(self.config.sources), self.config.delivery.mode)
        self.schedule_jobs()
        self.schedules.log_next_runs()
        self.runner.start()
        return True

    def stop(self) -> None:
        self.stopping.set()
        if self.runner.is_alive():
            self.runner.join()  # the run in progress ends first
        self.lock.release()
        self.api.close()
        log.info("daemon stopped")

    def run_forever(self) -> None:
        wake = threading.Event()
        reload_requested = threading.Event()

        def on_stop(signum: int, _frame: object) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            if not self.runner.is_alive():
                self.stopping.set()  # a standby stops waiting
            wake.set()

        def on_hup(_signum: int, _frame: object) -> None:
            reload_requested.set()
            wake.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        if not self.start():
            self.stop()  # a standby stopped before taking over
            return
        try:
            while True:
                if not wake.wait(timeout=1.0):
                    continue
                wake.clear()
                if reload_requested.is_set():
                    reload_requested.clear()
                    self.reload()
                    continue
                break
        finally:
            self.stop()


def fetch_stale(config: Config, log_level: int) -> int:
    """In a process of its own: pull stale sources, refitting the models on new papers; returns
    how many new papers came."""
    runtime.log_to_stderr(log_level)
    with Recommender(config, clock=system_clock) as rec:
        return rec.fetch_stale()


def run_digests(config: Config, users: list[UserConfig], jobs: int, log_level: int) -> list[UserResult]:
    """In the run's own process: pull stale sources (refitting the models on new papers), then
    build and send these users' digests in ``jobs`` worker processes (direct delivery; in queue
    mode the workers build them)."""
    runtime.log_to_stderr(log_level)
    runtime.set_jobs(jobs)
    log.info("digest run of %d user(s) in process %d", len(users), os.getpid())
    with Recommender(config, clock=system_clock) as rec:
        rec.fetch_stale()
        return rec.send([user.email for user in users])
