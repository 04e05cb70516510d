"""The API's methods that run an install (``recommender.pipeline.api_service``) against a real
SQLite file in tmp_path and a real SMTP server: what the commands init, fetch, outbox, retry,
feedback list, users feed-url, schedule list and the daemon's run print comes from these."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from recommender import Recommender
from recommender.base.config import UserConfig
from recommender.base.domain import Recommendation

from conftest import SEEDS, smtp_section, write_config
from smtp_server import SmtpServer

pytestmark = pytest.mark.fast

USERS = """
[[users]]
email = "ada@example.org"
name = "Ada"
"""


def _install(tmp_path: Path, extra: str = "") -> Recommender:
    config = write_config(tmp_path, USERS, extra, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    return Recommender.open(config)


def test_init_creates_then_finds_the_database_up_to_date(tmp_path: Path):
    with _install(tmp_path) as rec:
        first = rec.init()
        assert (first.state, first.before) == ("created", None) and first.schema
        assert str(tmp_path / "db.sqlite") in first.database
    with _install(tmp_path) as rec:
        again = rec.init()
        assert (again.state, again.schema) == ("already up to date", first.schema)
        assert [u.user for u in rec.users()] == ["ada@example.org"]


def test_recommend_written_writes_each_part_and_counts_the_picks(tmp_path: Path):
    with _install(tmp_path) as rec:
        rec.init()
        written: list[str] = []

        def render(users: Sequence[UserConfig], picks: dict[str, list[Recommendation]]) -> str:
            return "".join(f"{u.email} {r.paper.id}\n" for u in users for r in picks[u.email])

        assert rec.recommend_written(["ada@example.org"], 3, "latest", render, written.append) is None
        rec.ingest(SEEDS)
        count = rec.recommend_written(["ada@example.org"], 3, "latest", render, written.append)
        lines = "".join(written).splitlines()
        assert count == 3 == len(lines)
        assert [line.split()[1] for line in lines] == [r.paper.id for r in rec.recommend("ada@example.org", 3)]


def test_scheduled_run_sends_and_the_outbox_and_schedule_show_it(tmp_path: Path, smtp_server: SmtpServer):
    folder = tmp_path / "incoming"
    folder.mkdir()
    sources = f'[[sources]]\nname = "drop"\nkind = "trending_page"\npath = "{folder}/*.txt"\n'
    with _install(tmp_path, smtp_section(smtp_server.port) + sources) as rec:
        rec.init()
        rec.check_delivery()  # the secret is set and the relay needs no login: nothing to refuse
        assert rec.outbox().digests == [] and rec.failing_sources() == []
        for seed in SEEDS:
            (folder / seed.name).write_bytes(seed.read_bytes())
        [result] = rec.scheduled_run(["ada@example.org"])  # the stale source is fetched first
        assert result.status == "sent" and len(rec.papers()) > 0
        assert len(smtp_server.box.to("ada@example.org")) == 1
        [item] = rec.outbox("sent").digests
        assert (item.email, item.status) == ("ada@example.org", "sent") and rec.outbox("failed").digests == []
        retried = rec.retry()
        assert (retried.requeued, retried.sent, retried.all_sent) == ([], 0, True)
        [(user, when, kind)] = rec.next_digests()
        assert user.email == "ada@example.org" and when.tzinfo is not None and kind


def test_work_sends_what_queue_mode_enqueued(tmp_path: Path, smtp_server: SmtpServer):
    with _install(tmp_path, smtp_section(smtp_server.port) + '[delivery]\nmode = "queue"\n') as rec:
        rec.init()
        rec.ingest(SEEDS)
        [queued] = rec.scheduled_run(["ada@example.org"])
        assert [i.status for i in rec.outbox().digests] == ["pending"] and smtp_server.box.messages == []
        assert rec.work(concurrency=1, once=True, stop=threading.Event(), poll_seconds=0.05) == 1
        assert [i.status for i in rec.outbox().digests] == ["sent"] and queued.email == "ada@example.org"


def test_feed_url_rotates_and_feedback_starts_empty(tmp_path: Path):
    with _install(tmp_path) as rec:
        rec.init()
        first = rec.feed_url("ada@example.org")
        assert first == rec.feed_url("ada@example.org") and "/feed/" in first
        rotated = rec.feed_url("ada@example.org", rotate=True)
        assert rotated != first and rec.feed_url("ada@example.org") == rotated
        assert rec.feedback() == [] and rec.feedback("ada@example.org") == []


def test_init_schedules_the_readers_and_the_web_app_answers_their_links(tmp_path: Path):
    from starlette.testclient import TestClient

    with _install(tmp_path) as rec:
        rec.init()
        [(email, when)] = rec.schedules().next_runs().items()
        assert email == "ada@example.org" and when > rec.clock()
        with TestClient(rec.web_app()) as client:
            assert client.get("/").text == "recommender feedback endpoint: ok\n"
            assert client.get("/feedback/more/not-a-token").status_code == 400
            assert client.get("/feed/not-a-token").status_code == 404
