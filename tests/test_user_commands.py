"""feedback list, profile show, users list / resubscribe / export / forget, and migrations."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from recommender.base.config import load_config
from recommender.pipeline import digests
from recommender.store import Store, migrate
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox

from conftest import SEEDS, Invoke, smtp_section, write_config

TAROT = "TAROT: Targeted Data Selection via Optimal Transport"


@pytest.fixture
def clicked(tmp_path: Path, smtp_server, run: Invoke) -> tuple[Path, Store]:
    """Ada starred TAROT, got a digest, clicked "less" on its first entry and opened the second."""
    path = write_config(tmp_path, extra=smtp_section(smtp_server.port))
    run("init", config=path)
    run("ingest", *map(str, SEEDS[:1]), config=path)
    run("star", "--title", TAROT, config=path)
    config = load_config(path)
    store = Store.open(config.database.url)
    digests.run(config, store, config.users, lambda: datetime.now(UTC))
    user_id = store.user_id("ada@example.org")
    entries = Outbox(store).entries(1)
    log = FeedbackLog(store)
    log.record(user_id, entries[0][1], "less", 1, "tok-less", "127.0.0.1", datetime.now(UTC))
    log.record(user_id, entries[1][1], "open", 1, "tok-open", "127.0.0.1", datetime.now(UTC))
    return path, store


def test_feedback_list(clicked, run: Invoke):
    path, store = clicked
    events = [json.loads(line) for line in run("feedback", "list", "--json", config=path).stdout.splitlines()]
    assert [e["action"] for e in events] == ["less", "open"]
    assert events[0]["user"] == "ada@example.org" and events[0]["digest_id"] == 1
    assert "less" in run("feedback", "list", "--user", "ada@example.org", config=path).stdout


def test_profile_show_lists_terms_and_the_papers_that_shaped_them(clicked, run: Invoke):
    path, store = clicked
    profile = json.loads(run("profile", "show", "--json", config=path).stdout)
    pulls = {(p["title"], p["pull"]) for p in profile["papers"]}
    assert (TAROT, "positive") in pulls
    less_id = Outbox(store).entries(1)[0][1]
    assert (less_id, "negative") in {(p["paper_id"], p["pull"]) for p in profile["papers"]}
    assert profile["positive_terms"] and profile["negative_terms"]
    tarot_text = store.search_papers("TAROT")[0]
    assert any(t["term"] in (tarot_text.title + " " + tarot_text.abstract).lower() for t in profile["positive_terms"][:5])
    assert "more of:" in run("profile", "show", config=path).stdout


def test_users_list_export_resubscribe_forget(clicked, run: Invoke):
    path, store = clicked
    listed = json.loads(run("users", "list", "--json", config=path).stdout)
    assert listed["stars"] == 1 and listed["digests_sent"] == 1 and listed["subscribed"] is True
    exported = json.loads(run("users", "export", "ada@example.org", config=path).stdout)
    assert exported["email"] == "ada@example.org"
    assert len(exported["stars"]) == 1 and len(exported["feedback"]) == 2 and len(exported["digests"]) == 1
    assert exported["digests"][0]["entries"] and exported["profile"]["terms"]
    Outbox(store).set_unsubscribed(store.user_id("ada@example.org"), True)
    assert "UNSUBSCRIBED" in run("users", "list", config=path).stdout
    assert "resubscribed" in run("users", "resubscribe", "ada@example.org", config=path).stdout
    assert "already subscribed" in run("users", "resubscribe", "ada@example.org", config=path).stdout
    result = run("users", "forget", "ada@example.org", "--yes", config=path)
    assert "deleted 1 star(s), 2 feedback event(s), 1 digest(s)" in result.stdout
    again = json.loads(run("users", "export", "ada@example.org", config=path).stdout)
    assert again["stars"] == [] and again["feedback"] == [] and again["digests"] == []
    assert len(store.papers()) == 98  # papers are shared and stay


def test_a_database_from_an_older_schema_is_migrated_with_its_data(tmp_path: Path, run: Invoke, config_path: Path):
    url = load_config(config_path).database.url
    store = Store.open(url)
    store.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(store.engine, target="0001")
    with pytest.raises(Exception, match="older than this version"):
        store.check_schema()
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                          "VALUES ('p1', 'old paper', 'Old paper', 'kept', '[]', '', '', '2024-01-01 00:00:00')"))
    store.close()
    assert f"upgraded (schema {migrate.HEAD_REVISION})" in run("init").stdout
    assert json.loads(run("papers", "show", "p1", "--json").stdout)["abstract"] == "kept"
    conn = sqlite3.connect(tmp_path / "db" / "recommender.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    columns = {row[1] for row in conn.execute("PRAGMA table_info(digest_entries)")}
    assert "why" in columns
