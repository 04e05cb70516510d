"""Triggers and catch-up with a controlled clock, the daemon's job table, and `schedule list`."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from recommender.app.daemon import Daemon
from recommender.base.config import UserConfig, load_config
from recommender.pipeline import triggers
from recommender.store import Store
from recommender.store.state import DaemonState

from conftest import Invoke, write_config

ADA = UserConfig(email="ada@example.org", timezone="Europe/London", send_at=time(7, 30))


def _fires(user: UserConfig, start: datetime, count: int) -> list[datetime]:
    trigger = triggers.trigger_for(user)
    fires, previous = [], None
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, start)
        fires.append(previous)
        start = previous + timedelta(seconds=1)
    return fires


@pytest.mark.parametrize("zone, expected_utc_hours", [
    ("Europe/London", [7, 6, 6, 6]),          # BST starts 2025-03-30
    ("America/New_York", [11, 11, 11, 11]),   # already on EDT since 03-09
    ("Asia/Tokyo", [22, 22, 22, 22]),         # no DST; 07:30 JST is 22:30 UTC the day before
    ("Australia/Sydney", [20, 20, 20, 20]),   # AEDT until 04-06
])
def test_daily_fire_times_in_several_zones_across_a_dst_change(zone: str, expected_utc_hours: list[int]):
    user = replace(ADA, timezone=zone)
    fires = _fires(user, datetime(2025, 3, 28, 12, 0, tzinfo=UTC), 4)
    local = [f.astimezone(ZoneInfo(zone)) for f in fires]
    assert all((t.hour, t.minute) == (7, 30) for t in local)
    assert [f.hour for f in fires] == expected_utc_hours
    assert len({t.date() for t in local}) == 4


def test_weekly_fires_on_its_weekday():
    user = replace(ADA, frequency="weekly", weekday="wed")
    fires = _fires(user, datetime(2025, 3, 1, tzinfo=UTC), 3)
    assert [f.astimezone(ZoneInfo("Europe/London")).strftime("%a %d %H:%M") for f in fires] == [
        "Wed 05 07:30", "Wed 12 07:30", "Wed 19 07:30"]


def test_a_time_in_the_spring_gap_fires_at_the_first_valid_time_after_it():
    user = replace(ADA, send_at=time(1, 30))  # 01:00-02:00 does not exist in London on 2025-03-30
    fires = _fires(user, datetime(2025, 3, 29, 12, 0, tzinfo=UTC), 2)
    assert fires[0] == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 02:00 BST
    assert fires[1].astimezone(ZoneInfo("Europe/London")).strftime("%d %H:%M") == "31 01:30"


def test_a_time_in_the_autumn_overlap_fires_once():
    user = replace(ADA, send_at=time(1, 30))  # 01:00-02:00 happens twice on 2025-10-26
    fires = _fires(user, datetime(2025, 10, 25, 12, 0, tzinfo=UTC), 3)
    assert fires[0] == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # the first 01:30 (BST)
    assert fires[1] == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)  # next day, GMT


GRACE = timedelta(hours=1)


def test_a_run_missed_within_the_grace_period_is_sent_once():
    trigger = triggers.trigger_for(ADA)
    last = datetime(2025, 6, 1, 6, 30, 5, tzinfo=UTC)       # yesterday's 07:30 BST run
    now = datetime(2025, 6, 2, 7, 0, tzinfo=UTC)            # back at 08:00 BST, today's run missed by 30 min
    owed = triggers.catch_up(trigger, last, now, GRACE)
    assert owed.due == datetime(2025, 6, 2, 6, 30, tzinfo=UTC) and owed.skipped == ()


def test_a_run_missed_beyond_the_grace_period_is_skipped():
    trigger = triggers.trigger_for(ADA)
    owed = triggers.catch_up(trigger, datetime(2025, 6, 1, 6, 30, 5, tzinfo=UTC),
                             datetime(2025, 6, 2, 9, 0, tzinfo=UTC), GRACE)
    assert owed.due is None and owed.skipped == (datetime(2025, 6, 2, 6, 30, tzinfo=UTC),)


def test_several_missed_days_coalesce_into_one_digest_not_seven():
    trigger = triggers.trigger_for(ADA)
    last = datetime(2025, 5, 26, 6, 30, 5, tzinfo=UTC)
    now = datetime(2025, 6, 2, 6, 45, tzinfo=UTC)  # asleep for a week, across the missed days
    owed = triggers.catch_up(trigger, last, now, GRACE)
    assert owed.due == datetime(2025, 6, 2, 6, 30, tzinfo=UTC)
    assert len(owed.skipped) == 6


def test_a_daemon_asleep_across_a_dst_change_owes_one_digest():
    trigger = triggers.trigger_for(ADA)
    last = datetime(2025, 3, 29, 7, 30, 5, tzinfo=UTC)   # Sat 07:30 GMT
    now = datetime(2025, 3, 31, 6, 40, tzinfo=UTC)       # Mon 07:40 BST
    owed = triggers.catch_up(trigger, last, now, GRACE)
    assert owed.due == datetime(2025, 3, 31, 6, 30, tzinfo=UTC)
    assert owed.skipped == (datetime(2025, 3, 30, 6, 30, tzinfo=UTC),)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _daemon_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, users="""
    [[users]]
    email = "ada@example.org"
    timezone = "Europe/London"
    send_at = "07:30"
    [[users]]
    email = "bob@example.org"
    timezone = "America/New_York"
    frequency = "weekly"
    weekday = "fri"
    send_at = "18:00"
    """)


def _init(path: Path) -> Store:
    store = Store.open(load_config(path).database.url)
    store.upgrade_schema()
    return store


def _next_runs(daemon: Daemon) -> dict[str, datetime]:
    return daemon.next_runs()


def test_restart_keeps_the_schedule_and_catches_up_once(tmp_path: Path):
    path = _daemon_config(tmp_path)
    store = _init(path)
    first_start = Clock(datetime(2025, 6, 1, 12, 0, tzinfo=UTC))
    daemon = Daemon(path, clock=first_start)
    daemon.schedule_jobs()
    assert _next_runs(daemon)["ada@example.org"] == datetime(2025, 6, 2, 6, 30, tzinfo=UTC)
    assert _next_runs(daemon)["bob@example.org"] == datetime(2025, 6, 6, 22, 0, tzinfo=UTC)
    daemon.stop()
    # Down over Monday's 07:30 BST run; back 20 minutes later: that run is due at once, once.
    restart = Clock(datetime(2025, 6, 2, 6, 50, tzinfo=UTC))
    daemon = Daemon(path, clock=restart)
    daemon.schedule_jobs()
    assert _next_runs(daemon)["ada@example.org"] == datetime(2025, 6, 2, 6, 30, tzinfo=UTC)
    rows = {u.email: when for u, when, _ in daemon.api.next_digests()}
    assert rows["ada@example.org"] == datetime(2025, 6, 2, 6, 30, tzinfo=UTC)  # schedule list agrees
    daemon.run_user("ada@example.org")  # nothing ingested: runs, sends nothing, records the run
    daemon.stop()
    daemon = Daemon(path, clock=Clock(datetime(2025, 6, 2, 7, 0, tzinfo=UTC)))
    daemon.schedule_jobs()
    assert _next_runs(daemon)["ada@example.org"] == datetime(2025, 6, 3, 6, 30, tzinfo=UTC)
    daemon.stop()
    # Down for three hours past a run: beyond the grace period, skipped.
    daemon = Daemon(path, clock=Clock(datetime(2025, 6, 3, 9, 45, tzinfo=UTC)))
    daemon.schedule_jobs()
    assert _next_runs(daemon)["ada@example.org"] == datetime(2025, 6, 4, 6, 30, tzinfo=UTC)
    assert DaemonState(store).last_run(store.user_id("ada@example.org")) == datetime(2025, 6, 3, 9, 45, tzinfo=UTC)
    daemon.stop()


def test_config_changes_are_picked_up_on_reload(tmp_path: Path):
    path = _daemon_config(tmp_path)
    _init(path)
    daemon = Daemon(path, clock=Clock(datetime(2025, 6, 1, 12, 0, tzinfo=UTC)))
    daemon.schedule_jobs()
    path.write_text(path.read_text().replace('send_at = "07:30"', 'send_at = "09:15"')
                    + '\n[[users]]\nemail = "cy@example.org"\n')
    daemon.reload()
    runs = _next_runs(daemon)
    assert runs["ada@example.org"] == datetime(2025, 6, 2, 8, 15, tzinfo=UTC)
    assert runs["cy@example.org"] == datetime(2025, 6, 2, 7, 30, tzinfo=UTC)
    path.write_text("this is = not [valid toml")
    daemon.reload()  # a broken config keeps the old schedule
    assert _next_runs(daemon) == runs
    daemon.stop()


def test_schedule_list_answers_before_any_daemon_ran(run: Invoke, tmp_path: Path):
    path = _daemon_config(tmp_path)
    run("init", config=path)
    rows = [json.loads(line) for line in run("schedule", "list", "--json", config=path).stdout.splitlines()]
    assert [r["user"] for r in rows] == ["ada@example.org", "bob@example.org"]
    ada = datetime.fromisoformat(rows[0]["next_run"])
    assert ada.utcoffset() is not None and (ada.hour, ada.minute) == (7, 30)
    assert ada.tzinfo is not None and ada > datetime.now(UTC)
    assert rows[1]["kind"] == "weekly digest (fri)"
    assert datetime.fromisoformat(rows[1]["next_run"]).strftime("%a %H:%M") == "Fri 18:00"
