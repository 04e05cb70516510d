"""Hostile and odd input: markup, RTL and zero-width characters, huge abstracts, control
characters, header injection, slow clients, and secrets that must never show."""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from recommender import pipeline
from recommender.base.config import load_config
from recommender.pipeline import digests
from recommender.pipeline.web_site import web_app
from recommender.store import Store
from recommender.store.outbox import Outbox

from conftest import SECRET, Invoke, smtp_section, write_config

HOSTILE = [
    {"id": "h1", "title": "<script>alert('x')</script> \u202eevil\u202c title", "abstract": "text <b>bold</b>",
     "authors": ["<img src=x onerror=alert(1)>"]},
    {"id": "h2", "title": "Zero\u200bwidth\u200d and RTL \u05e9\u05dc\u05d5\u05dd", "abstract": "\u200b" * 10 + "ok"},
    {"id": "h3", "title": "Line one\r\nBcc: victim@example.org\r\nX-Evil: 1", "abstract": "header injection"},
    {"id": "h4", "title": "Control \x07\x1b[31mchars\x00", "abstract": "bell and escape"},
    {"id": "h5", "title": "A huge abstract", "abstract": "word " * 200_000},
]


@pytest.fixture
def hostile(tmp_path: Path, smtp_server, run: Invoke) -> tuple[Path, Store]:
    path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\nmax_items = 10\n',
                        extra=smtp_section(smtp_server.port))
    source = tmp_path / "hostile.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in HOSTILE), encoding="utf-8")
    run("init", config=path)
    run("ingest", str(source), config=path)
    return path, Store.open(load_config(path).database.url)


def test_titles_are_stored_on_one_line_and_safely(hostile):
    _, store = hostile
    titles = {p.id: p.title for p in store.papers()}
    assert titles["h3"] == "Line one Bcc: victim@example.org X-Evil: 1"
    assert "\x07" not in titles["h4"] and "\x1b" not in titles["h4"] and "\x00" not in titles["h4"]
    assert len(store.paper("h5").abstract) == len("word " * 200_000) - 1  # kept whole (trailing space trimmed)


def test_digest_escapes_markup_and_cannot_inject_headers(hostile, smtp_server):
    path, store = hostile
    config = load_config(path)
    results = digests.run(config, store, config.users, lambda: datetime.now(UTC))
    assert results[0].status == "sent" and results[0].papers == 5
    message = smtp_server.box.messages[0]
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert len(smtp_server.box.envelopes[0][1]) == 1
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<img src=x" not in html
    assert "<b>bold</b>" not in html
    assert "\x1b" not in text and "\x07" not in text
    assert len(message.as_bytes()) < 200_000  # the 1 MB abstract is cut to a snippet


def test_web_pages_escape_titles(hostile):
    path, store = hostile
    config = load_config(path)
    digests.queue_digests(digests.DigestWork(config, store, lambda: datetime.now(UTC)), config.users)
    raw = digests.message_of(digests.DigestWork(config, store), Outbox(store).items()[0].id)
    text = message_from_bytes(raw, policy=policy.default).get_body(("plain",)).get_content()
    import re

    links = re.findall(r"http://127\.0\.0\.1:8080(/feedback/more/[\w.-]+)", text)
    with TestClient(web_app(config, store), base_url="http://127.0.0.1:8080") as client:
        for link in links:
            page = client.get(link).text
            assert "<script>alert" not in page and "<img src=x" not in page


@pytest.mark.parametrize("query", ["' OR 1=1 --", "%", "_", "\"; DROP TABLE papers; --", "\\"])
def test_sql_metacharacters_in_arguments_are_just_text(hostile, run: Invoke, query: str):
    path, store = hostile
    result = run("papers", "search", query, "--json", config=path)
    assert all(query.lower() in (json.loads(line)["title"] + json.loads(line)["abstract"]).lower()
               for line in result.stdout.splitlines())
    run("papers", "show", query, config=path, code=1)
    assert len(store.papers()) == 5


def test_a_slow_client_does_not_block_others(tmp_path: Path, run: Invoke):
    import subprocess

    import httpx

    from conftest import recommender_command
    from smtp_server import free_port

    path = write_config(tmp_path)
    run("init", config=path)
    port = free_port()
    server = subprocess.Popen(recommender_command("--config", str(path), "serve", "--port", str(port)), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"GET /feedback/more/abc HTTP/1.1\r\nHost: x\r\n")  # and never finish
        started = time.monotonic()
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        for sock in slow:
            sock.close()
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_the_signing_secret_is_never_logged(tmp_path: Path, smtp_server, caplog: pytest.LogCaptureFixture):
    path = write_config(tmp_path, extra=smtp_section(smtp_server.port))
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    from conftest import SEEDS

    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    with caplog.at_level(logging.DEBUG):
        digests.run(config, store, config.users, lambda: datetime.now(UTC))
        with TestClient(web_app(config, store)) as client:
            client.get("/feedback/more/forged.token.value")
            client.get("/nope")
    assert SECRET not in caplog.text


def test_a_short_secret_is_refused_by_every_command_that_signs(tmp_path: Path, smtp_server, monkeypatch,
                                                                run: Invoke):
    from conftest import SEEDS

    path = write_config(tmp_path, extra=smtp_section(smtp_server.port))
    run("init", config=path)
    run("ingest", *map(str, SEEDS[:1]), config=path)
    monkeypatch.setenv("RECOMMENDER_SECRET", "short-secret-15")
    assert "shorter than 16 characters" in run("config", "check", config=path).stdout
    for command in (["digest", "send"], ["serve", "--port", "1"], ["run"]):
        result = run(*command, config=path, code=2)
        assert "shorter than 16 characters" in result.stderr and "Traceback" not in result.output
    assert smtp_server.box.messages == []
    monkeypatch.setenv("RECOMMENDER_SECRET", "sixteen-chars-ok")
    run("digest", "send", config=path)
    assert len(smtp_server.box.messages) == 1
