"""Channels beyond email, end to end: readers' feeds read by feedparser from the web app, and
webhook posts received by a real HTTP server on loopback standing in for Slack and Discord,
their bodies checked against the platforms' documented schemas and limits."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from starlette.testclient import TestClient

from recommender import pipeline
from recommender.base.config import load_config
from recommender.pipeline import channels, digests, shards
from recommender.pipeline.web_site import web_app
from recommender.store import Store
from recommender.store.channel_posts import ChannelPosts
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox

from conftest import SEEDS, Invoke, smtp_section, write_config
from smtp_server import SmtpServer
from webhook_server import Answer, WebhookServer

NOW = datetime(2025, 3, 21, 7, 30, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer().start()
    yield server
    server.stop()


def _setup(tmp_path: Path, port: int, users: str, extra: str = "", database_url: str | None = None):
    path = write_config(tmp_path, users=users, extra=smtp_section(port) + extra, database_url=database_url)
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 3, 20))
    return path, config, store


def _hooks(*entries: tuple[str, str, str]) -> str:
    return "".join(f'\n[[webhooks]]\nname = "{name}"\nkind = "{kind}"\nurl_env = "{env}"\n'
                   'retry_initial_seconds = 0.05\n' for name, kind, env in entries)


def _clock() -> datetime:
    return NOW


# -- the feed ---------------------------------------------------------------------------------
FEED_USERS = """
[[users]]
email = "ada@example.org"
name = "Ada"
max_items = 5
channels = ["feed"]
interests = ["optimal transport"]
[[users]]
email = "bob@example.org"
max_items = 4
channels = ["email", "feed"]
"""


def _feed_of(client: TestClient, url: str) -> Any:
    answer = client.get(url.removeprefix("http://127.0.0.1:8080"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    return answer


def test_a_feed_reader_gets_no_email_and_finds_the_picks_in_their_feed(tmp_path: Path, smtp_server: SmtpServer,
                                                                        run: Invoke, database_url: str):
    path, config, store = _setup(tmp_path, smtp_server.port, FEED_USERS, database_url=database_url)
    sent = run("digest", "send", config=path).stdout
    assert "ada@example.org: published 5 paper(s) [feed: published]" in sent
    assert "bob@example.org: sent 4 paper(s) [email: sent; feed: published]" in sent
    assert [m["To"] for m in smtp_server.box.messages] == ["bob@example.org"]  # none for Ada
    ada_url = run("users", "feed-url", "ada@example.org", config=path).stdout.strip()
    bob_url = run("users", "feed-url", "bob@example.org", config=path).stdout.strip()
    assert ada_url.startswith("http://127.0.0.1:8080/feed/") and ada_url != bob_url
    with TestClient(web_app(config, store)) as client:
        ada = feedparser.parse(_feed_of(client, ada_url).content)
        bob = feedparser.parse(_feed_of(client, bob_url).content)
    assert not ada.bozo and not bob.bozo
    assert ada.version == "atom10" and ada.feed.title == "Papers for Ada"
    assert ada.feed.author == "recommender paper digest"  # the seed papers name no authors of their own
    assert len(ada.entries) == 5 and len(bob.entries) == 4
    ada_id = store.user_id("ada@example.org")
    outbox = Outbox(store)
    picks = [e[1] for e in outbox.entries(outbox.latest_states([ada_id])[ada_id].id)]
    titles = {p.id: p.title for p in store.papers(picks)}
    assert [e.title for e in ada.entries] == [titles[p] for p in picks]  # in the digest's order
    for entry in ada.entries:
        assert entry.id.startswith("urn:uuid:") and entry.link.startswith("http://127.0.0.1:8080/open/")
        assert entry.published_parsed is not None
        assert "More like this" in entry.content[0].value and entry.summary
    # Bob's email and feed carry the same picks.
    mail = smtp_server.box.to("bob@example.org")[0].get_body(("plain",)).get_content()
    assert all(e.title.split()[0] in mail for e in bob.entries)


def test_the_feed_is_valid_atom_by_the_validators_rules(tmp_path: Path, smtp_server: SmtpServer, run: Invoke):
    """The W3C feed validator's rules that can be checked offline (RFC 4287): required
    elements, ids that are URIs and unique, RFC 3339 dates, one self link, xhtml content
    wrapped in one div."""
    path, config, store = _setup(tmp_path, smtp_server.port, FEED_USERS)
    run("digest", "send", config=path)
    url = run("users", "feed-url", "ada@example.org", config=path).stdout.strip()
    with TestClient(web_app(config, store)) as client:
        root = ET.fromstring(_feed_of(client, url).content)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    assert RFC3339.fullmatch(root.findtext(f"{ATOM}updated") or "")
    selfs = [link for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert len(selfs) == 1 and selfs[0].get("href") == url
    ids = [root.findtext(f"{ATOM}id")]
    for entry in root.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated", "published"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        ids.append(entry.findtext(f"{ATOM}id"))
        assert RFC3339.fullmatch(entry.findtext(f"{ATOM}updated") or "")
        assert [link.get("rel") for link in entry.findall(f"{ATOM}link")] == ["alternate"]
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "xhtml"
        assert [c.tag for c in content] == ["{http://www.w3.org/1999/xhtml}div"]
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", i or "") for i in ids) and len(set(ids)) == len(ids)


def test_feed_answers_conditional_gets_and_changes_with_a_new_digest(tmp_path: Path, smtp_server: SmtpServer,
                                                                    run: Invoke):
    path, config, store = _setup(tmp_path, smtp_server.port, FEED_USERS)
    run("digest", "send", config=path)
    url = run("users", "feed-url", "ada@example.org", config=path).stdout.strip().removeprefix("http://127.0.0.1:8080")
    with TestClient(web_app(config, store)) as client:
        first = client.get(url)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
        assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        # A feed may be cached privately and revalidated (its validators are what polls use).
        assert first.headers["cache-control"] == "private, no-cache"
        for hostile in ("01 Jan 9999999999999999999 00:00:00 GMT", "01 Jan 2020 00:00:00 +99999999999999999999"):
            assert client.get(url, headers={"If-Modified-Since": hostile}).status_code == 200
        entry_ids = {e.id for e in feedparser.parse(first.content).entries}
        pipeline.ingest_files(store, SEEDS[2:3], batch_date=date(2025, 3, 22))
        run("digest", "send", config=path)
        second = client.get(url, headers={"If-None-Match": etag})
        assert second.status_code == 200 and second.headers["etag"] != etag
        later = feedparser.parse(second.content)
        # The first run's entries keep their ids: a feed reader shows each paper once.
        assert entry_ids <= {e.id for e in later.entries} and len(later.entries) > len(entry_ids)


def test_revoked_and_forged_feed_urls_answer_404_and_record_nothing(tmp_path: Path, smtp_server: SmtpServer,
                                                                   run: Invoke):
    path, config, store = _setup(tmp_path, smtp_server.port, FEED_USERS)
    run("digest", "send", config=path)
    old = run("users", "feed-url", "ada@example.org", config=path).stdout.strip()
    rotated = run("users", "feed-url", "--rotate", "ada@example.org", config=path)
    new = rotated.stdout.strip()
    assert new != old and "revoked" in rotated.stderr
    assert run("users", "feed-url", "ada@example.org", config=path).stdout.strip() == new
    email_only = FEED_USERS.replace('channels = ["feed"]', 'channels = ["email"]')
    with TestClient(web_app(config, store)) as client:
        assert client.get(new.removeprefix("http://127.0.0.1:8080")).status_code == 200
        token = old.rsplit("/", 1)[1]
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        for url in (old, f"/feed/{forged}", "/feed/not-a-token", new.replace("/feed/", "/feed/x")):
            answer = client.get(url.removeprefix("http://127.0.0.1:8080"))
            assert answer.status_code == 404 and "There is nothing at this address" in answer.text
        # A feed URL's token opens nothing else, and no other link's token is a feed.
        new_token = new.rsplit("/", 1)[1]
        assert client.get(f"/open/{new_token}", follow_redirects=False).status_code in (400, 410)  # issued at 0
        assert client.get(f"/feedback/more/{new_token}").status_code in (400, 410)
        mail = smtp_server.box.to("bob@example.org")[0].get_body(("plain",)).get_content()
        open_token = re.search(r"/open/([\w.-]+)", mail).group(1)  # type: ignore[union-attr]
        assert client.get(f"/feed/{open_token}").status_code == 404
        with store.read() as conn:
            hits_before = conn.exec_driver_sql("SELECT count(*) FROM link_hits").scalar()
    assert FeedbackLog(store).events() == [] and hits_before == 0
    other = tmp_path / "email-only"
    other.mkdir()
    config_email_only = load_config(write_config(other, users=email_only, extra=smtp_section(smtp_server.port),
                                                 database_url=config.database.url))
    with TestClient(web_app(config_email_only, store)) as client:  # Ada left the feed channel
        assert client.get(new.removeprefix("http://127.0.0.1:8080")).status_code == 404


def test_the_feed_endpoints_rate_limit_applies(tmp_path: Path, smtp_server: SmtpServer, run: Invoke):
    path, config, store = _setup(tmp_path, smtp_server.port, FEED_USERS,
                                 extra="[feedback]\nrate_limit_per_minute = 3\n")
    run("digest", "send", config=path)
    url = run("users", "feed-url", "ada@example.org", config=path).stdout.strip().removeprefix("http://127.0.0.1:8080")
    with TestClient(web_app(config, store)) as client:
        codes = [client.get(url).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


# -- webhooks ---------------------------------------------------------------------------------
def check_slack_message(body: dict[str, Any]) -> None:
    """Slack's incoming webhook with Block Kit: text as the fallback, at most 50 blocks, a
    header's plain_text up to 150 characters, a section's text up to 3,000, context elements."""
    assert isinstance(body["text"], str) and body["text"]
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        assert block["type"] in ("header", "section", "context", "divider")
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and 0 < len(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn" and 0 < len(block["text"]["text"]) <= 3000
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(e["type"] == "mrkdwn" and e["text"] for e in block["elements"])
        else:
            assert block == {"type": "divider"}


def check_discord_message(body: dict[str, Any]) -> None:
    """Discord's execute-webhook body: content up to 2,000, at most 10 embeds sharing 6,000
    characters; title 256, description 4,096, footer 2,048, author name 256; colour an int."""
    assert len(body.get("content", "")) <= 2000
    embeds = body["embeds"]
    assert 1 <= len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert set(embed) <= {"title", "url", "description", "color", "footer", "author", "fields"}
        assert 0 < len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
        assert len(embed["footer"]["text"]) <= 2048 and len(embed.get("author", {}).get("name", "")) <= 256
        assert isinstance(embed["color"], int) and embed["url"].startswith("http")
        total += (len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
                  + len(embed.get("author", {}).get("name", "")))
    assert total <= 6000
    assert body["allowed_mentions"] == {"parse": []}


HOOK_USERS = """
[[users]]
email = "ada@example.org"
name = "Ada"
max_items = 30
channels = ["email", "webhook"]
webhook = "ada-discord"
[[users]]
email = "bob@example.org"
max_items = 6
channels = ["webhook"]
webhook = "bob-slack"
"""


def test_slack_and_discord_get_posts_within_their_schemas_and_limits(tmp_path: Path, smtp_server: SmtpServer,
                                                                     webhook: WebhookServer, run: Invoke,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ADA_HOOK", webhook.url("/discord"))
    monkeypatch.setenv("BOB_HOOK", webhook.url("/slack"))
    path, config, store = _setup(tmp_path, smtp_server.port, HOOK_USERS,
                                 _hooks(("ada-discord", "discord", "ADA_HOOK"), ("bob-slack", "slack", "BOB_HOOK")))
    out = run("digest", "send", config=path).stdout
    assert re.search(r"ada@example.org: sent (\d+) paper\(s\) \[email: sent; webhook ada-discord: sent\]", out)
    assert "bob@example.org: published 6 paper(s) [webhook bob-slack: sent]" in out
    assert [m["To"] for m in smtp_server.box.messages] == ["Ada <ada@example.org>"]
    discord = [body for _, p, body in webhook.hook.requests if p == "/discord"]
    slack = [body for _, p, body in webhook.hook.requests if p == "/slack"]
    ada_papers = int(re.search(r"ada@example.org: sent (\d+)", out).group(1))  # type: ignore[union-attr]
    assert ada_papers > 10 and len(discord) >= -(-ada_papers // 10)  # split: 10 embeds a post at most
    for body in discord:
        check_discord_message(body)
    assert sum(len(b["embeds"]) for b in discord) == ada_papers
    assert len(slack) == 1
    check_slack_message(slack[0])
    sections = [b for b in slack[0]["blocks"] if b["type"] == "section"]
    assert len(sections) == 6 and all(re.match(r"\*<http://127\.0\.0\.1:8080/open/", s["text"]["text"])
                                      for s in sections)
    listed = run("outbox", "list", config=path).stdout
    assert re.search(r"post \d+\tsent\twebhook:ada-discord\t\d+ paper\(s\)", listed)
    assert "no email\tbob@example.org" in listed
    assert run("digest", "send", config=path).stdout.count("nothing new") == 2
    assert len(webhook.hook.requests) == len(discord) + 1  # nothing posted twice


def test_json_webhook_gets_the_documented_payload(tmp_path: Path, smtp_server: SmtpServer, webhook: WebhookServer,
                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JSON_HOOK", webhook.url())
    users = HOOK_USERS.replace('"ada-discord"', '"any"').replace('"bob-slack"', '"any"')
    _, config, store = _setup(tmp_path, smtp_server.port, users, _hooks(("any", "json", "JSON_HOOK")))
    digests.run(config, store, config.users, _clock)
    assert len(webhook.hook.accepted) == 1  # two readers of one webhook: one post for the run
    body = webhook.hook.accepted[0]
    assert body["schema"] == "recommender.digest.v1" and body["webhook"] == "any" and body["readers"] == 2
    assert RFC3339.fullmatch(body["created_at"])
    papers = body["papers"]
    assert papers and set(papers[0]) == {"id", "title", "url", "authors", "snippet", "why", "score", "readers"}
    assert [p["readers"] for p in papers] == sorted((p["readers"] for p in papers), reverse=True)
    assert len({p["id"] for p in papers}) == len(papers) and papers[0]["readers"] == 2
    assert len(papers) <= 30


def test_every_webhook_kind_has_a_body_builder():
    from recommender.base.settings import WEBHOOK_KINDS
    from recommender.digest.posts import BUILDERS

    assert tuple(BUILDERS) == WEBHOOK_KINDS


def test_a_groups_channel_gets_one_post_per_run_with_each_paper_once(tmp_path: Path, smtp_server: SmtpServer,
                                                                     webhook: WebhookServer,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_HOOK", webhook.url())
    users = "".join(f'\n[[users]]\nemail = "r{i}@example.org"\nmax_items = 4\nchannels = ["email", "webhook"]\n'
                    f'webhook = "lab-channel"\n' + ('interests = ["optimal transport"]\n' if i == 0 else "")
                    for i in range(3))
    _, config, store = _setup(tmp_path, smtp_server.port, users, _hooks(("lab-channel", "slack", "LAB_HOOK")))
    lines = digests.run(config, store, config.users, _clock)
    assert all(line.channels == "email: sent; webhook lab-channel: sent" for line in lines)
    assert len(webhook.hook.accepted) == 1 and len(smtp_server.box.messages) == 3
    body = webhook.hook.accepted[0]
    check_slack_message(body)
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    titles = [re.match(r"\*<[^|]+\|([^>]+)>\*", s).group(1) for s in sections]  # type: ignore[union-attr]
    assert len(titles) == len(set(titles)) and len(titles) <= 4
    assert any("picked for 3 of 3 readers" in s for s in sections)
    assert "group" in body["blocks"][0]["text"]["text"]


def test_429_waits_for_retry_after_and_5xx_retries(tmp_path: Path, smtp_server: SmtpServer, webhook: WebhookServer,
                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOOK", webhook.url())
    webhook.hook.script = [Answer(429, '{"message": "You are being rate limited.", "retry_after": 5}',
                                  {"Retry-After": "1", "Content-Type": "application/json"}),
                           Answer(502, "bad gateway"), Answer(503, "unavailable")]
    users = HOOK_USERS.replace("max_items = 30", "max_items = 3")
    _, config, store = _setup(tmp_path, smtp_server.port, users, _hooks(("ada-discord", "discord", "HOOK"),
                                                                        ("bob-slack", "slack", "HOOK")))
    lines = {line.email: line for line in digests.run(config, store, config.users, _clock)}
    times = [t for t, _, _ in webhook.hook.requests]
    assert len(times) == 5 and len(webhook.hook.accepted) == 2  # one post each, after three refusals
    assert times[1] - times[0] >= 0.95  # the header's second, not the body's five
    assert lines["ada@example.org"].channels.endswith("webhook ada-discord: sent")


def test_a_long_retry_after_defers_and_other_4xx_fail_with_the_reason(tmp_path: Path, smtp_server: SmtpServer,
                                                                     webhook: WebhookServer, run: Invoke,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ADA_HOOK", webhook.url("/discord"))
    monkeypatch.setenv("BOB_HOOK", webhook.url("/slack"))
    path, config, store = _setup(tmp_path, smtp_server.port, HOOK_USERS.replace("max_items = 30", "max_items = 3"),
                                 _hooks(("ada-discord", "discord", "ADA_HOOK"), ("bob-slack", "slack", "BOB_HOOK")))
    webhook.hook.script = [Answer(429, "", {"Retry-After": "3600"}), Answer(404, "no_service")]
    out = run("digest", "send", config=path, code=1).stdout
    assert "webhook ada-discord: deferred until" in out and "HTTP 429" in out
    assert "webhook bob-slack: failed (bob-slack: HTTP 404 no_service)" in out
    assert len(webhook.hook.requests) == 2  # neither tried again in the run
    listed = run("outbox", "list", "--status", "failed", config=path).stdout
    assert "webhook:bob-slack" in listed and "HTTP 404 no_service" in listed
    retried = run("outbox", "retry", config=path)  # the endpoint answers now: both go
    assert len(webhook.hook.accepted) == 2 and "sent 2" in retried.stderr


def test_an_unset_webhook_url_defers_the_post_until_it_is_set(tmp_path: Path, smtp_server: SmtpServer,
                                                              webhook: WebhookServer, run: Invoke,
                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BOB_HOOK", raising=False)
    users = HOOK_USERS.split("[[users]]")[2]
    path, config, store = _setup(tmp_path, smtp_server.port, "[[users]]" + users, _hooks(("bob-slack", "slack",
                                                                                         "BOB_HOOK")))
    out = run("digest", "send", config=path, code=1).stdout
    assert "deferred until" in out and "$BOB_HOOK is not set" in out
    monkeypatch.setenv("BOB_HOOK", webhook.url())
    run("outbox", "retry", config=path)
    assert len(webhook.hook.accepted) == 1


def test_config_check_validates_channels_and_warns_on_unset_webhook_urls(tmp_path: Path, run: Invoke,
                                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LAB_HOOK", raising=False)
    good = write_config(tmp_path, users='[[users]]\nemail = "a@example.org"\nchannels = ["feed", "webhook"]\n'
                        'webhook = "lab"\n', extra=_hooks(("lab", "slack", "LAB_HOOK")))
    result = run("config", "check", config=good)
    assert "$LAB_HOOK is not set: its posts will fail" in result.stdout + result.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    cases = [
        ('channels = ["pigeon"]\n', "", 'users[0].channels: expected a list of email, feed, webhook, got \'pigeon\''),
        ('channels = ["webhook"]\n', "", 'users[0].webhook: channels has "webhook" but no webhook is named'),
        ('channels = ["webhook"]\nwebhook = "nope"\n', "", "users[0].webhook: expected the name of a [[webhooks]]"),
        ("", _hooks(("lab", "teams", "X")), "webhooks[0].kind: expected slack or discord or json, got 'teams'"),
        ("", '\n[[webhooks]]\nname = "lab"\nkind = "slack"\nurl = "https://hooks.slack.com/x"\nurl_env = "X"\n',
         "webhooks[0].url: a webhook URL is a secret"),
        ('webhook = "lab"\n', _hooks(("lab", "slack", "X")), 'users[0].webhook: set, but channels has no "webhook"'),
    ]
    for user_keys, extra, message in cases:
        path = write_config(bad, users=f'[[users]]\nemail = "a@example.org"\n{user_keys}', extra=extra)
        result = run("config", "check", config=path, code=2)
        assert message in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr


def test_an_upgrade_keeps_todays_outbox_and_delivery_history(database_url: str):
    """A database written by the previous schema (0008): its digests, messages, entries and
    feedback survive, every digest counts as made for email, and delivery goes on."""
    from sqlalchemy import text

    from recommender.store import migrate
    from recommender.store.outbox import Outbox

    store = Store.open(database_url)
    migrate.upgrade(store.engine, target="0008")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.org', '2026-01-01')"))
        conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                          "VALUES ('p1', 'a paper', 'A paper', 'x', '[]', '', '', '2026-01-01')"))
        for digest_id, status in ((7, "sent"), (8, "pending"), (9, "failed")):
            conn.execute(text(
                "INSERT INTO digests (id, user_id, status, message_id, subject, last_batch_id, attempts, last_error, "
                "server_reply, lease_owner, created_at, sent_at) VALUES (:i, 1, :s, :m, 's', 1, 1, '', '250 ok', '', "
                "'2026-01-01', NULL)"), {"i": digest_id, "s": status, "m": f"<m{digest_id}@x>"})
            conn.execute(text("INSERT INTO digest_messages (digest_id, message) VALUES (:i, :m)"),
                         {"i": digest_id, "m": b"Subject: kept\r\n\r\nbody"})
            conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why) "
                              "VALUES (:i, 0, 'p1', 0.5, 'because')"), {"i": digest_id})
        conn.execute(text("INSERT INTO feedback (user_id, paper_id, action, digest_id, client, created_at) "
                          "VALUES (1, 'p1', 'more', 7, '', '2026-01-02')"))
    assert store.upgrade_schema() == ("0008", migrate.HEAD_REVISION)
    outbox = Outbox(store)
    assert [(i.id, i.status, i.server_reply) for i in outbox.items()] == [
        (7, "sent", "250 ok"), (8, "pending", "250 ok"), (9, "failed", "250 ok")]
    assert outbox.entries(7) == [(0, "p1", 0.5, "because", 100)] and outbox.message(8) == b"Subject: kept\r\n\r\nbody"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT DISTINCT channels FROM digests")).scalars().all() == [",email,"]
        assert conn.execute(text("SELECT count(*) FROM feedback")).scalar_one() == 1
        assert conn.execute(text("SELECT feed_generation FROM users")).scalar_one() == 0
    assert ChannelPosts(store).owed("lab") == []  # nothing of the history is posted anywhere
    assert [c[0] for c in outbox.claim("me", timedelta(minutes=5))] == [8]
    store.close()


def test_feed_url_and_posts_through_the_pipeline_helpers_share_the_digest_id(tmp_path: Path, smtp_server: SmtpServer,
                                                                             webhook: WebhookServer,
                                                                             monkeypatch: pytest.MonkeyPatch):
    """A reader on every channel: one digest (one id) behind the email, the feed and the post;
    the post's id is the email's Message-ID."""
    monkeypatch.setenv("HOOK", webhook.url())
    users = '[[users]]\nemail = "ada@example.org"\nmax_items = 3\nchannels = ["email", "feed", "webhook"]\nwebhook = "mine"\n'
    _, config, store = _setup(tmp_path, smtp_server.port, users, _hooks(("mine", "json", "HOOK")))
    digests.run(config, store, config.users, _clock)
    message_id = smtp_server.box.messages[0]["Message-ID"]
    assert webhook.hook.accepted[0]["id"] == message_id
    signer = digests.signer_for(config, _clock)
    url = channels.feed_url(config, store, signer, config.users[0])
    with TestClient(web_app(config, store)) as client:
        feed = feedparser.parse(_feed_of(client, url).content)
    digest_id = int(message_id.split(".")[1])
    for entry in feed.entries:
        assert signer.verify(entry.link.rsplit("/", 1)[1]).digest_id == digest_id
    assert [e.title for e in feed.entries] == [p["title"] for p in webhook.hook.accepted[0]["papers"]]


def test_recommender_serve_serves_the_feed_to_a_feed_reader(tmp_path: Path, smtp_server: SmtpServer, run: Invoke):
    """The real command on a loopback port: feedparser fetches the feed over HTTP (sending the
    ETag it was given, as feed readers do) and a forged URL answers 404."""
    import os
    import signal
    import subprocess
    import time

    import httpx

    from conftest import recommender_command
    from smtp_server import free_port

    port = free_port()
    path, config, store = _setup(tmp_path, smtp_server.port, FEED_USERS,
                                 extra=f'[feedback]\nbase_url = "http://127.0.0.1:{port}"\n')
    run("digest", "send", config=path)
    url = run("users", "feed-url", "ada@example.org", config=path).stdout.strip()
    server = subprocess.Popen(recommender_command("--config", str(path), "serve", "--port", str(port)), cwd=tmp_path,
                              env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert datetime.now(UTC) < deadline, "serve did not start"
                time.sleep(0.1)
        feed = feedparser.parse(url)
        assert feed.status == 200 and not feed.bozo and len(feed.entries) == 5 and feed.etag
        again = feedparser.parse(url, etag=feed.etag, modified=feed.modified)
        assert again.status == 304 and again.entries == []
        assert httpx.get(url[:-2] + "xx").status_code == 404
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()


def _recorded_answer(name: str) -> Answer:
    """A documented HTTP answer kept under tests/fixtures/webhooks (see SOURCES.md)."""
    lines = (Path(__file__).parent / "fixtures" / "webhooks" / name).read_text().splitlines()
    head = [line[2:] for line in lines if line.startswith("< ")]
    status = int(head[0].split()[1])
    headers = dict(line.split(": ", 1) for line in head[1:])
    return Answer(status, "\n".join(line for line in lines if not line.startswith("< ")), headers)


@pytest.mark.parametrize(("fixture", "wait"), [("discord-429-user.txt", 65), ("discord-429-shared.txt", 1337)])
def test_discords_documented_429_defers_the_post_by_its_retry_after(tmp_path: Path, smtp_server: SmtpServer,
                                                                    webhook: WebhookServer, fixture: str, wait: int,
                                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOOK", webhook.url())
    users = HOOK_USERS.split("[[users]]")[1].replace("max_items = 30", "max_items = 3")
    _, config, store = _setup(tmp_path, smtp_server.port, "[[users]]" + users, _hooks(("ada-discord", "discord",
                                                                                        "HOOK")))
    webhook.hook.script = [_recorded_answer(fixture)]
    line = digests.run(config, store, config.users, _clock)[0]
    assert f"retry after {wait}s" in line.channels  # the header's whole seconds, beyond max_retry_after_seconds
    (post,) = ChannelPosts(store).items()
    assert post.status == "pending" and post.next_attempt_at is not None and len(webhook.hook.requests) == 1
    assert abs((post.next_attempt_at - NOW).total_seconds() - wait) < 1


def test_slack_and_discord_bodies_split_at_their_limits():
    """60 long picks: Slack's 50 blocks and Discord's 10 embeds / 6,000 characters each."""
    from recommender.digest.posts import (
        Post,
        PostPaper,
        discord_messages,
        embed_chars,
        slack_messages,
    )

    papers = [PostPaper(id=f"p{i}", title=f"Paper {i} " + "t" * 300, url=f"https://arxiv.org/abs/2501.{i:05d}",
                        authors=("A. Author",), authors_shown="A. Author et al. " + "a" * 300,
                        snippet="s" * 5000, why="w" * 3000, score=1.0 - i / 100,
                        more_url=f"http://127.0.0.1:8080/feedback/more/{i}",
                        less_url=f"http://127.0.0.1:8080/feedback/less/{i}") for i in range(60)]
    post = Post("<id@x>", "mine", "60 new papers for Ada — 6 Dec", NOW, 1, papers)
    slack = slack_messages(post)
    for body in slack:
        check_slack_message(body)
    assert sum(b["type"] == "section" for m in slack for b in m["blocks"]) == 60 and len(slack) == 4
    discord = discord_messages(post)
    for body in discord:
        check_discord_message(body)
    assert sum(len(m["embeds"]) for m in discord) == 60
    assert all(sum(embed_chars(e) for e in m["embeds"]) <= 6000 for m in discord)
    assert discord[0]["content"].endswith(f"(1/{len(discord)})")
    assert all(e["description"].endswith(f"[Fewer like this](http://127.0.0.1:8080/feedback/less/{i})")
               for i, e in enumerate(e for m in discord for e in m["embeds"]))


def test_in_queue_mode_workers_deliver_the_posts(tmp_path: Path, smtp_server: SmtpServer, webhook: WebhookServer,
                                                 monkeypatch: pytest.MonkeyPatch):
    import threading

    monkeypatch.setenv("HOOK", webhook.url())
    users = HOOK_USERS.replace("max_items = 30", "max_items = 3")
    _, config, store = _setup(tmp_path, smtp_server.port, users, _hooks(("ada-discord", "discord", "HOOK"),
                                                                        ("bob-slack", "slack", "HOOK"))
                              + '[delivery]\nmode = "queue"\n')
    queued = digests.enqueue(config, store, config.users, _clock)
    assert [r.status for r in queued] == ["queued", "queued"] and webhook.hook.requests == []
    assert [p.status for p in ChannelPosts(store).items()] == ["pending", "pending"]
    shards.work(config, store, threading.Event(), shards.WorkerOptions(1, once=True))
    assert len(webhook.hook.accepted) == 2 and len(smtp_server.box.messages) == 1
    assert [p.status for p in ChannelPosts(store).items()] == ["sent", "sent"]
