"""The daemon behind `recommender run`: one APScheduler job per user at their ``send_at``.
A job hands its user to the digest runner, which gathers the users due at the same moment
and does their run in a fresh process (``base.parallel.in_fresh_process``: the daemon runs
threads, so it cannot fork): pull stale sources, then build and send (or, in queue mode,
enqueue) their digests, split between ``--jobs`` worker processes exactly as `digest send`
does. A run whose process dies is started again; every step of it is recorded, so the new
one only does what is left. Jobs are rebuilt from the config plus each user's last run in
the database, so a restart sends one digest for a run missed within the grace period and
skips older ones. SIGHUP reloads the config; SIGTERM and SIGINT stop it cleanly (after the
run in progress)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from recommender import pipeline
from recommender.app import runtime, triggers
from recommender.base import parallel
from recommender.base.clock import Clock
from recommender.base.config import Config, DeliveryMode, UserConfig, load_config
from recommender.pipeline import digests
from recommender.pipeline.digests import UserResult
from recommender.pipeline.fetching import Fetcher
from recommender.pipeline.store_access import DaemonLock, DaemonState, Store

log = logging.getLogger(__name__)


class Daemon:
    GATHER_SECONDS = 1.0  # users due at the same moment reach the runner within this
    ATTEMPTS = 3  # a run whose process died is started again, at most this often

    def __init__(self, config_path: Path, database_url: str | None = None, clock: Clock | None = None,
                 run_log_level: int | None = None):
        self.config_path = config_path
        self.run_log_level = run_log_level  # of the runs' processes (None: this process's level)
        self.database_url = database_url
        self.clock = clock or _now
        self.config = load_config(config_path, database_url)
        self.store = Store.open(self.config.database.url)
        self.store.check_schema()
        if self.config.delivery.mode == DeliveryMode.DIRECT:
            digests.signer_for(self.config, self.clock)  # refuse a missing secret before starting
            digests.check_credentials(self.config.smtp)  # and a login that can only fail or leak
        self.state = DaemonState(self.store)
        self.lock = DaemonLock(self.store)
        self.stopping = threading.Event()
        self.due: dict[str, None] = {}  # emails waiting for the runner, in the order they fell due
        self.due_changed = threading.Condition()
        self.runner = threading.Thread(target=self._run_due, name="digest-runner", daemon=True)
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": self.grace_seconds})
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)

    @property
    def grace_seconds(self) -> int:
        return self.config.scheduler.misfire_grace_minutes * 60

    # -- jobs -----------------------------------------------------------------------------------
    def schedule_jobs(self) -> None:
        """Add, change or remove jobs to match the config (also on SIGHUP)."""
        now = self.clock()
        grace = timedelta(seconds=self.grace_seconds)
        wanted = {f"digest:{u.email.lower()}": u for u in self.config.users}
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
                log.info("removed schedule of %s (no longer configured)", job.id.split(":", 1)[1])
        ids = self.store.sync_users(u.email for u in self.config.users)
        for job_id, user in wanted.items():
            trigger = triggers.trigger_for(user)
            existing = self.scheduler.get_job(job_id)
            if existing is not None and str(existing.trigger) == str(trigger):
                continue
            user_id = ids.of(user.email)
            last = self.state.last_run(user_id)
            if last is None:
                self.state.set_last_run(user_id, now)
            owed = triggers.catch_up(trigger, last, now, grace)
            for missed in owed.skipped:
                log.warning("skipped the digest of %s due %s: the daemon was down for longer than the grace "
                            "period", user.email, missed.isoformat())
            if owed.skipped and owed.due is None:
                self.state.set_last_run(user_id, now)
            next_time = owed.due or trigger.get_next_fire_time(None, now)
            if existing is not None:
                existing.remove()
            self.scheduler.add_job(self.fall_due, trigger=trigger, args=[user.email], id=job_id,
                                   name=f"digest for {user.email}", next_run_time=next_time)
            log.info("next digest of %s: %s (%s)", user.email,
                     next_time.astimezone(trigger.zone).isoformat() if next_time else "none", trigger)

    def fall_due(self, email: str) -> None:
        """The job: hand the user to the runner (a user already waiting is not added twice)."""
        with self.due_changed:
            self.due[email] = None
            self.due_changed.notify()

    def _run_due(self) -> None:
        while True:
            with self.due_changed:
                while not self.due and not self.stopping.is_set():
                    self.due_changed.wait()
                if self.stopping.is_set():
                    return
            time.sleep(self.GATHER_SECONDS)
            with self.due_changed:
                emails, self.due = list(self.due), {}
            try:
                self.run_users(emails)
            except Exception:  # noqa: BLE001 - one failed run must not stop the daemon's later ones
                log.exception("digest run for %d user(s) failed", len(emails))

    def run_user(self, email: str) -> None:
        self.run_users([email])

    def run_users(self, emails: list[str]) -> None:
        """One run for these users (in a fresh process): fetch what is stale, then their
        digests. Logs one line per user and records their run."""
        if self.stopping.is_set():
            return
        started = time.monotonic()
        wanted = {e.lower() for e in emails}
        users = [u for u in self.config.users if u.email.lower() in wanted]
        if not users:
            return
        level = self.run_log_level or logging.getLogger().getEffectiveLevel()
        for attempt in range(1, self.ATTEMPTS + 1):
            if attempt > 1 and self.stopping.is_set():
                return  # stopped by a signal that reached the run's process too (Ctrl-C): restart sends the rest
            log.info("digest run for %d user(s) in a new process (attempt %d)", len(users), attempt)
            try:
                results = parallel.in_fresh_process(run_digests, self.config, users, parallel.jobs(), level)
                break
            except parallel.ProcessDied as exc:
                log.error("the digest run's process ended early (%s)%s", exc,
                          ": starting it again" if attempt < self.ATTEMPTS else "")
            except parallel.WorkFailed as exc:
                log.error("digest run for %d user(s) failed: %s", len(users), exc)
                return
        else:
            return
        finished = self.clock()
        for result in results:
            self.state.set_last_run(self.store.user_id(result.email), finished)
            log.info("%s", result.line())  # the line `digest send` prints
        log.info("digest run for %d user(s) done in %.1fs", len(results), time.monotonic() - started)
        for user in users:
            self._log_next(user)

    def _log_next(self, user: UserConfig) -> None:
        job = self.scheduler.get_job(f"digest:{user.email.lower()}") if self.scheduler.running else None
        if job is not None and job.next_run_time is not None:
            log.info("next digest of %s: %s", user.email,
                     job.next_run_time.astimezone(triggers.trigger_for(user).zone).isoformat())

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("skipped %s due %s: later than the grace period", event.job_id,
                        event.scheduled_run_time.isoformat())
        else:
            log.error("%s failed: %s", event.job_id, event.exception)

    # -- life cycle ----------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            self.config = load_config(self.config_path, self.database_url)
        except Exception as exc:  # keep running with the old config
            log.error("config reload failed, keeping the previous config: %s", exc)
            return
        log.info("config reloaded: %d user(s)", len(self.config.users))
        self.schedule_jobs()

    def start(self) -> None:
        """Take the database's daemon lock (``DaemonRunning`` if another daemon holds it), then
        schedule every user."""
        self.lock.acquire()
        log.info("daemon started: config %s, %d user(s), %d source(s), delivery %s", self.config_path,
                 len(self.config.users), len(self.config.sources), self.config.delivery.mode)
        self.schedule_jobs()
        self.runner.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        with self.due_changed:
            self.due_changed.notify()
        if self.runner.is_alive():
            self.runner.join()  # the run in progress ends first
        self.lock.release()
        self.store.close()
        log.info("daemon stopped")

    def run_forever(self) -> None:
        wake = threading.Event()
        reload_requested = threading.Event()

        def on_stop(signum: int, _frame: object) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            wake.set()

        def on_hup(_signum: int, _frame: object) -> None:
            reload_requested.set()
            wake.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        self.start()
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


def _now() -> datetime:
    return datetime.now(UTC)


def run_digests(config: Config, users: list[UserConfig], jobs: int, log_level: int) -> list[UserResult]:
    """In the run's own process: pull stale sources (refitting the models on new papers), then
    build and send (or enqueue) these users' digests in ``jobs`` worker processes."""
    runtime.log_to_stderr(log_level)
    runtime.set_jobs(jobs)
    log.info("digest run of %d user(s) in process %d", len(users), os.getpid())
    store = Store.open(config.database.url)
    try:
        if config.sources:
            fetcher = Fetcher(config, store, clock=_now)
            stale = fetcher.stale()
            if stale and any(o.new_papers for o in fetcher.fetch(stale)):
                pipeline.refresh(store, config, _now())
        if config.delivery.mode == DeliveryMode.QUEUE:
            return digests.enqueue(config, store, users, _now)
        return digests.run(config, store, users, _now, deliver_while_queueing=parallel.can_fork())
    finally:
        store.close()


def describe_schedule(config: Config, store: Store, now: datetime) -> list[tuple[UserConfig, datetime, str]]:
    """(user, next run in the user's zone, job kind), as the daemon would schedule it."""
    state = DaemonState(store)
    ids = store.sync_users(u.email for u in config.users)
    grace = timedelta(minutes=config.scheduler.misfire_grace_minutes)
    rows = []
    for user in config.users:
        when = triggers.next_run(user, state.last_run(ids.of(user.email)), now, grace)
        rows.append((user, when.astimezone(triggers.trigger_for(user).zone), triggers.job_kind(user)))
    return rows
