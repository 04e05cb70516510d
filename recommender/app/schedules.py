"""The config's schedules against the database's: each reader's trigger (readers sharing a
send time, zone and frequency share one, and its text is the rule stored beside them), the
bulk sync of the stored schedules (`init`, `run` and SIGHUP), and the settling of due groups
a tick enqueues (a run missed beyond the grace period skipped, several coalesced into one)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from recommender.app import triggers
from recommender.base.config import WEEKDAYS, Config, UserConfig
from recommender.pipeline.store_access import (
    NewSchedule,
    ReaderSchedule,
    ReaderSettings,
    Settled,
    Store,
)

log = logging.getLogger(__name__)


def rule_of(trigger: triggers.DigestTrigger) -> str:
    """The stored text of a schedule: every field of the trigger, seconds included (a change of
    any of them reschedules the readers)."""
    day = "daily" if trigger.weekday is None else WEEKDAYS[trigger.weekday]
    return f"{day} at {trigger.at.isoformat()} {trigger.zone.key}"


class ConfigSchedules:
    def __init__(self, config: Config):
        self.grace = timedelta(minutes=config.scheduler.misfire_grace_minutes)
        shared: dict[tuple[object, ...], triggers.DigestTrigger] = {}
        self.user_triggers: dict[str, triggers.DigestTrigger] = {}  # lower-case email -> trigger
        for user in config.users:
            key = (user.send_at, user.timezone, user.frequency, user.weekday)
            trigger = shared.get(key) or shared.setdefault(key, triggers.trigger_for(user))
            self.user_triggers[user.email.lower()] = trigger
        self.rules = {rule_of(t): t for t in shared.values()}
        self.by_email: dict[str, UserConfig] = {u.email.lower(): u for u in config.users}

    def sync(self, store: Store, now: datetime) -> None:
        """Store the schedules of new readers and of readers whose rule changed (one read of
        every schedule, one executemany), unschedule readers no longer configured, and settle
        the runs missed while no daemon ran."""
        schedule = ReaderSchedule(store)
        ids = store.sync_users(self.by_email)
        written = ReaderSettings(store).sync({ids[email]: user for email, user in self.by_email.items()})
        stored = schedule.stored()
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
        schedule.save(changes, lambda uid: uid in stored)
        schedule.unschedule(gone)
        self.settle(store, now, enqueue=False)
        log.info("schedules of %d reader(s): %d new or changed, %d no longer configured; settings of %d stored",
                 len(ids), len(changes), len(gone), written)

    def settle(self, store: Store, now: datetime, enqueue: bool) -> int:
        """Settle the due groups and, with ``enqueue``, enqueue their readers; returns how many."""
        def settled(rule: str, at: datetime) -> Settled | None:
            trigger = self.rules.get(rule)
            if trigger is None:
                return None
            owed = triggers.catch_up(trigger, at - timedelta(microseconds=1), now, self.grace)
            if owed.due is None:
                return Settled(None, trigger.get_next_fire_time(now, now))
            return Settled(owed.due, trigger.get_next_fire_time(owed.due, now))

        enqueued, changed = ReaderSchedule(store).tick(now, settled, enqueue)
        for rule, at, size, owed in changed:
            log.warning("skipped the digests of %d reader(s) (%s) due %s%s: the daemon was down for longer than the "
                        "grace period", size, rule, at.isoformat(),
                        f" to {owed.due.isoformat()} (one digest instead)" if owed.due else "")
        if enqueued:
            log.info("%d reader(s) due", enqueued)
        return enqueued
