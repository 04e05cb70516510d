"""The readers' schedules of one config against the database's: each reader's trigger (readers
sharing a send time, zone and frequency share one, and its text is the rule stored beside
them), the bulk sync of the stored schedules (`init`, `run` and SIGHUP), the settling of due
groups a tick enqueues (a run missed beyond the grace period skipped, several coalesced into
one), and the shards of owed readers the daemon claims. ``Recommender.schedules`` hands one
out; the daemon's ticks and `schedule list` call it and hold no store handle themselves."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from recommender.base.config import WEEKDAYS, Config, UserConfig
from recommender.pipeline import triggers
from recommender.pipeline.api_results import NextDigest, Shard
from recommender.pipeline.reader_directory import ReaderDirectory
from recommender.store import Store
from recommender.store.lease_owners import new_owner
from recommender.store.outbox import Outbox
from recommender.store.reader_settings import ReaderSettings
from recommender.store.schedule import NewSchedule, ReaderSchedule, Settled

log = logging.getLogger(__name__)


def rule_of(trigger: triggers.DigestTrigger) -> str:
    """The stored text of a schedule: every field of the trigger, seconds included (a change of
    any of them reschedules the readers)."""
    day = "daily" if trigger.weekday is None else WEEKDAYS[trigger.weekday]
    return f"{day} at {trigger.at.isoformat()} {trigger.zone.key}"


class ReaderSchedules:
    """The configured readers' schedules in the database (one per config: a reload takes a new one)."""

    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.stored = ReaderSchedule(store)
        self.directory = ReaderDirectory(config, store)
        self.grace = timedelta(minutes=config.scheduler.misfire_grace_minutes)
        shared: dict[tuple[object, ...], triggers.DigestTrigger] = {}
        self.user_triggers: dict[str, triggers.DigestTrigger] = {}  # lower-case email -> trigger
        for user in config.users:
            key = (user.send_at, user.timezone, user.frequency, user.weekday)
            trigger = shared.get(key) or shared.setdefault(key, triggers.trigger_for(user))
            self.user_triggers[user.email.lower()] = trigger
        self.rules = {rule_of(t): t for t in shared.values()}
        self.by_email: dict[str, UserConfig] = config.users_by_email

    def sync(self, now: datetime) -> None:
        """Store the schedules of new readers and of readers whose rule changed (one read of
        every schedule, one executemany), unschedule readers no longer configured, and settle
        the runs missed while no daemon ran."""
        ids = self.store.sync_users(self.by_email)
        written = ReaderSettings(self.store).sync({ids[email]: user for email, user in self.by_email.items()})
        stored = self.stored.stored()
        changes: list[NewSchedule] = []
        for email, trigger in self.user_triggers.items():
            user_id, rule = ids[email], rule_of(trigger)
            old = stored.get(user_id)
            if old is not None and old.rule == rule and old.next_run_at is not None:
                continue
            last = old.last_run_at if old is not None else None
            owed = triggers.catch_up(trigger, last, now, self.grace)
            for missed in owed.skipped:
                log.warning("skipped the digest of %s due %s: the daemon was down for longer than the grace period",
                            email, missed.isoformat())
            recorded = now if last is None or (owed.skipped and owed.due is None) else last
            next_time = owed.due or trigger.get_next_fire_time(None, now)
            changes.append(NewSchedule(user_id, rule, next_time, recorded))
            log.debug("scheduled %s: %s, next %s", email, trigger, next_time.isoformat() if next_time else "none")
        configured = set(ids.values())
        gone = [uid for uid, old in stored.items() if old.rule and uid not in configured]
        self.stored.save(changes, lambda uid: uid in stored)
        self.stored.unschedule(gone)
        self.settle(now, enqueue=False)
        log.info("schedules of %d reader(s): %d new or changed, %d no longer configured; settings of %d stored",
                 len(ids), len(changes), len(gone), written)

    def settle(self, now: datetime, enqueue: bool) -> int:
        """Settle the due groups and, with ``enqueue``, enqueue their readers; returns how many."""
        def settled(rule: str, at: datetime) -> Settled | None:
            trigger = self.rules.get(rule)
            if trigger is None:
                return None
            owed = triggers.catch_up(trigger, at - timedelta(microseconds=1), now, self.grace)
            if owed.due is None:
                return Settled(None, trigger.get_next_fire_time(now, now))
            return Settled(owed.due, trigger.get_next_fire_time(owed.due, now))

        enqueued, changed = self.stored.tick(now, settled, enqueue)
        for rule, at, size, owed in changed:
            log.warning("skipped the digests of %d reader(s) (%s) due %s%s: the daemon was down for longer than the "
                        "grace period", size, rule, at.isoformat(),
                        f" to {owed.due.isoformat()} (one digest instead)" if owed.due else "")
        if enqueued:
            log.info("%d reader(s) due", enqueued)
        return enqueued

    def first_due(self) -> datetime | None:
        """The earliest stored next run (an index read: a tick's first look)."""
        return self.stored.first_due()

    def next_runs(self) -> dict[str, datetime]:
        """email (lower case) -> next run, of the configured readers."""
        ids = self.store.sync_users(self.by_email)
        runs = self.stored.next_runs()
        return {email: runs[uid] for email, uid in ids.items() if uid in runs}

    def log_next_runs(self, most: int = 20) -> None:
        """Log the next digest of the first ``most`` readers, in each one's zone."""
        runs = self.next_runs()
        for email, trigger in list(self.user_triggers.items())[:most]:
            if email in runs:
                log.info("next digest of %s: %s (%s)", self.by_email[email].email,
                         runs[email].astimezone(trigger.zone).isoformat(), trigger)
        if len(runs) > most:
            log.info("and %d more reader(s) scheduled", len(runs) - most)

    def prune_sent(self, now: datetime) -> int:
        """Delete the messages of digests sent over ``[delivery].keep_days`` ago; returns how many."""
        keep_days = self.config.delivery.keep_days
        pruned = Outbox(self.store).prune(now - timedelta(days=keep_days))
        if pruned:
            log.info("pruned the messages of %d digest(s) sent over %d days ago", pruned, keep_days)
        return pruned

    def run_now(self, email: str, now: datetime) -> None:
        """Owe this reader a run now; it stands for their next run if that is due."""
        user_id = self.store.user_id(email)
        trigger = self.user_triggers.get(email.lower())
        after = trigger.get_next_fire_time(now, now) if trigger is not None else None
        self.stored.run_now([user_id], now, {user_id: after} if after is not None else {})

    def claim(self, lease: timedelta, limit: int, now: datetime) -> Shard | None:
        """Take up to ``limit`` owed readers under a new lease owner (None: none is owed); the
        owed readers no longer configured are dropped (nothing to run for them)."""
        owner = new_owner()
        claimed = self.stored.claim(owner, lease, limit, now)
        if not claimed:
            return None
        return Shard(owner, tuple(self.directory.claimed(self.stored, claimed)))

    def finish(self, shard: Shard, finished: datetime) -> int:
        """Record the run of every reader of the shard; returns how many."""
        return self.stored.finish(shard.owner, finished)

    def describe(self, now: datetime) -> list[NextDigest]:
        """Each configured reader's next digest, in their zone, as the daemon would schedule it."""
        ids = self.store.sync_users(u.email for u in self.config.users)
        last_runs = self.stored.last_runs(list(ids.values()))
        rows = []
        for user in self.config.users:
            when = triggers.next_run(user, last_runs.get(ids.of(user.email)), now, self.grace)
            rows.append(NextDigest(user, when.astimezone(triggers.trigger_for(user).zone), triggers.job_kind(user)))
        return rows
