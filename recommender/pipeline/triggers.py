"""When each user's digest is due: an APScheduler trigger at ``send_at`` in the user's time
zone (daily, or weekly on ``weekday``) that behaves across daylight-saving changes (a time in
the spring-forward gap fires at the first valid time after it; a time in the autumn overlap
fires once), and the catch-up rule for a daemon that was down at that time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from recommender.base.config import WEEKDAYS, UserConfig


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day``: the first occurrence in an overlap, the
    first valid instant after it when it falls in a gap."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    # In a gap: binary-search the instant the clocks jump (the first wall time after ``at``).
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


class DigestTrigger(BaseTrigger):
    """Fires at ``at`` local time every day, or on one weekday (0 = Monday)."""

    def __init__(self, at: time, zone: str, weekday: int | None = None):
        self.at = at
        self.zone = ZoneInfo(zone)
        self.weekday = weekday

    def _fire_on(self, day: date) -> datetime | None:
        if self.weekday is not None and day.weekday() != self.weekday:
            return None
        return local_instant(day, self.at, self.zone)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now if previous_fire_time is None else min(now, previous_fire_time + timedelta(microseconds=1))
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(16):
            fire = self._fire_on(day)
            if fire is not None and fire >= start and (previous_fire_time is None or fire > previous_fire_time):
                return fire
            day += timedelta(days=1)
        return None

    def __str__(self) -> str:
        when = "daily" if self.weekday is None else f"weekly on {WEEKDAYS[self.weekday]}"
        return f"{when} at {self.at:%H:%M} {self.zone.key}"

    def __repr__(self) -> str:
        return f"<DigestTrigger {self}>"


def trigger_for(user: UserConfig) -> DigestTrigger:
    weekday = WEEKDAYS.index(user.weekday) if user.frequency == "weekly" else None
    return DigestTrigger(user.send_at, user.timezone, weekday)


def job_kind(user: UserConfig) -> str:
    return "daily digest" if user.frequency == "daily" else f"weekly digest ({user.weekday})"


@dataclass(frozen=True)
class CatchUp:
    """What a (re)starting daemon owes a user: one coalesced run if the newest missed time is
    within the grace period, nothing (but a log line) if it is later than that."""

    due: datetime | None
    skipped: tuple[datetime, ...]


def missed_runs(trigger: DigestTrigger, since: datetime, now: datetime) -> list[datetime]:
    runs: list[datetime] = []
    fire = trigger.get_next_fire_time(since, now)
    while fire is not None and fire <= now and len(runs) < 1000:
        runs.append(fire)
        fire = trigger.get_next_fire_time(fire, now)
    return runs


def catch_up(trigger: DigestTrigger, last_run: datetime | None, now: datetime, grace: timedelta) -> CatchUp:
    if last_run is None:
        return CatchUp(None, ())
    missed = missed_runs(trigger, last_run, now)
    if not missed:
        return CatchUp(None, ())
    newest = missed[-1]
    if now - newest <= grace:
        return CatchUp(newest, tuple(missed[:-1]))
    return CatchUp(None, tuple(missed))


def next_run(user: UserConfig, last_run: datetime | None, now: datetime, grace: timedelta) -> datetime:
    """What the daemon schedules next for ``user``: a due catch-up, else the next fire time."""
    trigger = trigger_for(user)
    owed = catch_up(trigger, last_run, now, grace)
    if owed.due is not None:
        return owed.due
    fire = trigger.get_next_fire_time(None, now)
    assert fire is not None  # nosec B101  # a type narrowing; the trigger always has a next time here
    return fire
