"""Digest email end to end: a real aiosmtpd server on loopback receives what we send."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender import pipeline
from recommender.base.config import load_config
from recommender.base.link_signing import LinkSigner
from recommender.delivery.smtp import DeliveryAborted
from recommender.pipeline import digests
from recommender.store import Store
from recommender.store.outbox import Outbox

from conftest import SECRET, SEEDS, Invoke, smtp_section, write_config
from smtp_server import SmtpServer, free_port

TAROT = "TAROT: Targeted Data Selection via Optimal Transport"
NOW = datetime(2025, 3, 21, 7, 30, tzinfo=UTC)
USERS = """
[[users]]
email = "ada@example.org"
name = "Ada"
max_items = 5
interests = ["optimal transport"]
[[users]]
email = "bob@example.org"
max_items = 3
"""


def _setup(tmp_path: Path, port: int, database_url: str | None = None, users: str = USERS, **smtp: object):
    path = write_config(tmp_path, users=users, extra=smtp_section(port, **smtp), database_url=database_url)
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 3, 20))
    return config, store


def _clock():
    return NOW


def test_digest_arrives_with_both_parts_headers_and_valid_links(tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    config, store = _setup(tmp_path, smtp_server.port, database_url)
    results = {r.email: r for r in digests.run(config, store, config.users, _clock)}
    assert results["ada@example.org"].status == "sent" and results["ada@example.org"].papers == 5
    assert results["bob@example.org"].papers == 3
    ada = smtp_server.box.to("ada@example.org")
    assert len(ada) == 1 and len(smtp_server.box.messages) == 2
    message = ada[0]
    assert message.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["Subject"] == "5 new papers for you — 21 Mar"
    assert message["From"] == "Paper Digest <digest@example.org>"
    assert message["To"] == "Ada <ada@example.org>"
    assert message["Date"] and re.fullmatch(r"<digest\.\d+\.\d+\.[0-9a-f]+@example\.org>", message["Message-ID"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.count("More like this: ") == 5 and html.count(">More like this</a>") == 5
    signer = LinkSigner(SECRET)
    urls = re.findall(r"http://127\.0\.0\.1:8080/(feedback/more|feedback/less|open|unsubscribe|digest)/([\w.-]+)", text)
    assert len(urls) == 5 * 3 + 2
    for path, token in urls:
        link = signer.verify(token)
        assert path.split("/")[-1] in (link.action, "digest" if link.action == "view" else link.action)
        assert "@" not in token and "ada" not in token
    unsubscribe = re.search(r"<(http[^>]+)>", message["List-Unsubscribe"]).group(1)
    assert signer.verify(unsubscribe.rsplit("/", 1)[1]).action == "unsubscribe"
    assert [i.status for i in Outbox(store).items()] == ["sent", "sent"]
    store.close()


def test_running_again_with_nothing_new_sends_nothing_and_new_batches_are_covered(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port)
    digests.run(config, store, config.users, _clock)
    first_ids = {e[1] for e in Outbox(store).entries(1)}
    again = digests.run(config, store, config.users, _clock)
    assert [r.status for r in again] == ["nothing new", "nothing new"]
    assert len(smtp_server.box.messages) == 2
    pipeline.ingest_files(store, SEEDS[2:3], batch_date=date(2025, 3, 20))
    third = digests.run(config, store, config.users, _clock)
    assert [r.status for r in third] == ["sent", "sent"]
    newest = Outbox(store).items()[-2]
    new_ids = {e[1] for e in Outbox(store).entries(newest.id)}
    assert not new_ids & first_ids
    batch3 = set(store.batch_entries([store.all_batch_ids()[-1]]))
    assert new_ids <= batch3


def test_first_digest_covers_the_latest_ingest_run_only(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, users='[[users]]\nemail = "ada@example.org"\nmax_items = 500\n')
    pipeline.ingest_files(store, SEEDS[4:], batch_date=date(2025, 3, 20))
    digests.run(config, store, config.users, _clock)
    sent = {e[1] for e in Outbox(store).entries(1)}
    assert sent == set(store.batch_entries(store.latest_run_batch_ids()))
    assert len(sent) == 74


def test_titles_are_escaped_in_html(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, users='[[users]]\nemail = "ada@example.org"\n')
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(json.dumps({"title": "<script>alert(1)</script> & <b>bold</b>\r\nBcc: evil@example.org",
                                   "abstract": "<img src=x onerror=alert(2)> text", "authors": ["<i>Eve</i>"]}) + "\n")
    pipeline.ingest_files(store, [hostile])
    digests.run(config, store, config.users, _clock)
    message = smtp_server.box.messages[0]
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert "<img" not in html and "<i>Eve" not in html
    assert message["Bcc"] is None and len(smtp_server.box.envelopes[0][1]) == 1


def test_server_down_fails_at_once_then_up_delivers_once(tmp_path: Path):
    port = free_port()
    config, store = _setup(tmp_path, port, users='[[users]]\nemail = "ada@example.org"\n', max_attempts=8)
    # Nothing listens: the first connection ends the run with the setting to check, no retries.
    with pytest.raises(DeliveryAborted, match=rf"connection to 127.0.0.1:{port} refused: check \[smtp\] host and port"):
        digests.run(config, store, config.users, _clock)
    item = Outbox(store).items()[0]
    assert item.status == "pending" and item.attempts == 0 and item.last_error == ""
    server = SmtpServer(port).start()
    try:
        results = digests.run(config, store, config.users, _clock)  # the next run sends it, once
        assert results[0].status == "sent"
        assert len(server.box.messages) == 1
        assert Outbox(store).items()[0].status == "sent"
    finally:
        server.stop()


def test_permanent_550_is_marked_failed_reported_and_not_retried(tmp_path: Path, smtp_server: SmtpServer, run: Invoke):
    smtp_server.box.rcpt_reply = "550 5.1.1 mailbox unavailable"
    config_path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\n', extra=smtp_section(smtp_server.port))
    run("init", config=config_path)
    run("ingest", *map(str, SEEDS[:1]), config=config_path)
    result = run("digest", "send", config=config_path, code=1)
    assert "ada@example.org: failed: 550 5.1.1 mailbox unavailable" in result.stdout
    items = [json.loads(line) for line in run("outbox", "list", "--json", config=config_path).stdout.splitlines()]
    assert [(i["status"], i["attempts"]) for i in items] == [("failed", 1)]
    # The failed digest returns its entries: after the server is fixed, a retry delivers the same message.
    smtp_server.box.rcpt_reply = None
    assert "sent 1" in run("outbox", "retry", config=config_path).stderr
    assert smtp_server.box.message_ids() == [items[0]["message_id"]]


def test_pending_digest_from_a_crashed_run_is_sent_first_with_its_message_id(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, users='[[users]]\nemail = "ada@example.org"\n')
    queued = digests.queue_digests(digests.DigestWork(config, store, _clock), config.users)  # rendered and stored, never sent
    assert queued["ada@example.org"].status == "queued"
    stored = Outbox(store).items()[0]
    assert stored.status == "pending"
    results = digests.run(config, store, config.users, _clock)
    assert results[0].status == "sent"
    assert smtp_server.box.message_ids() == [stored.message_id]


def test_unsubscribed_users_get_nothing(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port)
    Outbox(store).set_unsubscribed(store.user_id("bob@example.org"), True)
    results = {r.email: r.status for r in digests.run(config, store, config.users, _clock)}
    assert results == {"ada@example.org": "sent", "bob@example.org": "unsubscribed"}
    assert [m["To"] for m in smtp_server.box.messages] == ["Ada <ada@example.org>"]


def test_dry_run_and_preview_change_nothing(tmp_path: Path, smtp_server: SmtpServer, run: Invoke):
    config_path = write_config(tmp_path, users=USERS, extra=smtp_section(smtp_server.port))
    run("init", config=config_path)
    run("ingest", *map(str, SEEDS[:1]), config=config_path)
    out = tmp_path / "deep" / "folder" / "p.html"
    result = run("digest", "preview", "--user", "ada@example.org", "--out", str(out), config=config_path)
    assert result.stdout.strip() == str(out) and "<html" in out.read_text()
    dry = run("digest", "send", "--dry-run", config=config_path).stdout
    assert "ada@example.org: would send 5 paper(s)" in dry
    assert run("outbox", "list", "--json", config=config_path).stdout == ""
    assert smtp_server.box.messages == []
    unwritable = run("digest", "preview", "--user", "ada@example.org", "--out", "/proc/nope/x.html",
                     config=config_path, code=1)
    assert unwritable.stderr.startswith("Error: /proc/nope/x.html: cannot write")


def test_missing_or_example_secret_refuses_to_send(tmp_path: Path, smtp_server: SmtpServer, run: Invoke,
                                                   monkeypatch: pytest.MonkeyPatch):
    config_path = write_config(tmp_path, extra=smtp_section(smtp_server.port))
    run("init", config=config_path)
    run("ingest", *map(str, SEEDS[:1]), config=config_path)
    monkeypatch.setenv("RECOMMENDER_SECRET", "change-me-to-a-long-random-string")
    assert "example value" in run("digest", "send", config=config_path, code=2).stderr
    monkeypatch.delenv("RECOMMENDER_SECRET")
    assert "RECOMMENDER_SECRET is not set" in run("digest", "send", config=config_path, code=2).stderr
    assert smtp_server.box.messages == []


def test_many_users_are_sent_over_few_connections(tmp_path: Path, smtp_server: SmtpServer):
    users = "".join(f'[[users]]\nemail = "u{i}@example.org"\nmax_items = 2\n' for i in range(25))
    config, store = _setup(tmp_path, smtp_server.port, users=users, max_connections=3)
    started = time.monotonic()
    results = digests.run(config, store, config.users, _clock)
    assert time.monotonic() - started < 60
    assert [r.status for r in results] == ["sent"] * 25
    assert sorted(str(m["To"]) for m in smtp_server.box.messages) == sorted(f"u{i}@example.org" for i in range(25))


def test_process_killed_between_rendering_and_sending_delivers_on_the_next_run(tmp_path: Path):
    import os
    import signal
    import socket
    import subprocess

    from conftest import recommender_command

    port = free_port()
    config_path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\n',
                               extra=smtp_section(port, timeout_seconds=60))
    config = load_config(config_path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    # A server that accepts connections and never answers: the sender hangs after storing the digest.
    blackhole = socket.socket()
    blackhole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blackhole.bind(("127.0.0.1", port))
    blackhole.listen(5)
    process = subprocess.Popen(recommender_command("--config", str(config_path), "digest", "send"),
                               cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not Outbox(store).items() and time.monotonic() < deadline:
            time.sleep(0.05)
        blackhole.accept()  # the sender has connected: the message is rendered and stored, not sent
        # The whole command dies (with its delivery child, which may be the one sending).
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        blackhole.close()
    stored = Outbox(store).items()
    assert [i.status for i in stored] == ["pending"]
    server = SmtpServer(port).start()
    try:
        results = digests.run(config, store, config.users, _clock)
        assert results[0].status == "sent"
        assert server.box.message_ids() == [stored[0].message_id]
        assert Outbox(store).items()[0].status == "sent"
    finally:
        server.stop()
        store.close()


@pytest.mark.parametrize(("sender", "name", "subject", "text"), [
    ("Paper Digest <digest@example.org>", "Ada", "5 new papers for you — 21 Mar", "plain\nlines\n"),
    ("Zoë’s Digest <digest@example.org>", "Ünïcode, \"Quoted\" Name", "x" * 150 + " — long subject " + "y" * 90,
     "trailing space \n.starts with a dot\nFrom the start\n" + "long " * 60 + "\n=3D literal\r\nmixed\rbreaks"),
    ("digest@example.org", "", "ascii only subject that is long enough to need folding " * 3, ""),
    ("Paper Digest <digest@example.org>", "Ada", "plain", "a\n" * 3),
    ("Paper Digest <digest@example.org>", "Ada", "plain", "Schrödinger’s cat · 3 papers\n   “quoted” … ≠\n"),
])
def test_the_written_out_message_reads_like_the_email_package_one(sender: str, name: str, subject: str, text: str):
    """build_message writes the MIME bytes itself (speed); a mail reader must see exactly what
    the email package's own message says: headers, both parts, their encodings."""
    from recommender.base.config import SmtpConfig, UserConfig
    from recommender.digest import message as delivery_message
    from recommender.digest.render import RenderedDigest

    smtp, user = SmtpConfig(sender=sender), UserConfig(email="ada@example.org", name=name)
    # One HTML line too long for 7bit (quoted-printable then), and with characters beyond ASCII.
    rendered = RenderedDigest(subject, "<html><body><p>é ≠ — " + "<b>x</b>" * 200 + "</p></body></html>", text)
    args = (smtp, user, rendered, "<digest.1.2.abc@example.org>", "https://r.example/unsubscribe/" + "t" * 90,
            "unsubscribe@example.org", datetime(2026, 3, 21, 7, 30, tzinfo=UTC))
    ours = delivery_message.build_message(*args)
    theirs = delivery_message._build_with_email_package(*args)
    assert all(line.endswith(b"\r") or not line for line in ours.split(b"\n")[:-1])  # CRLF only
    assert max(len(line) for line in ours.split(b"\r\n")) <= 998
    mine, reference = (email.message_from_bytes(m, policy=email.policy.default) for m in (ours, theirs))
    assert ours.isascii() == text.isascii()  # only a plain text beyond ASCII goes 8bit
    assert mine.get_body(("plain",))["Content-Transfer-Encoding"] == ("7bit" if text.isascii() else "8bit")
    for header in ("From", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
                   "Auto-Submitted", "MIME-Version"):
        assert str(mine[header]) == str(reference[header]), header
    recipient = mine["To"].addresses[0]  # (the email package itself drops the quotes inside a name)
    assert (recipient.display_name, recipient.addr_spec) == (name, "ada@example.org")
    assert mine.get_content_type() == "multipart/alternative" and not mine.defects
    for kind in ("plain", "html"):
        part, expected = mine.get_body((kind,)), reference.get_body((kind,))
        assert part.get_content() == expected.get_content() and not part.defects
        assert part["Content-Transfer-Encoding"] == expected["Content-Transfer-Encoding"]
        assert part.get_content_charset() == "utf-8"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r\n", b"\r", b"\n", b"\0", b"x" * 500, b"y" * 997]), max_size=12).map(b"".join))
def test_a_part_is_sent_unencoded_only_when_smtp_carries_its_lines_as_they_are(lines: bytes):
    from recommender.digest.message import MAX_LINE_OCTETS, _carried_as_is

    bare = lines.replace(b"\r\n", b"")
    plain = (b"\0" not in lines and b"\r" not in bare and b"\n" not in bare
             and max(len(line) for line in lines.split(b"\r\n")) <= MAX_LINE_OCTETS)
    assert _carried_as_is(lines) == plain


@pytest.mark.parametrize(("offered", "ehlo"), [(True, True), (False, True), (False, False)])
def test_an_8bit_text_part_goes_as_8bitmime_or_is_re_encoded_for_a_server_without_it(smtp_server: SmtpServer,
                                                                                     offered: bool, ehlo: bool):
    """RFC 6152: 8-bit data only to a server that offers 8BITMIME, announced with BODY=8BITMIME;
    for one that does not (or knows only HELO), the same message re-encoded to 7 bits."""
    import asyncio

    from recommender.base.config import SmtpConfig, UserConfig
    from recommender.delivery import smtp as delivery
    from recommender.digest import message as delivery_message
    from recommender.digest.render import RenderedDigest

    smtp_server.box.eight_bit_mime, smtp_server.box.ehlo = offered, ehlo
    smtp = SmtpConfig(host="127.0.0.1", port=smtp_server.port, security="none", sender="d@example.org")
    text = "Schrödinger’s cat · 3 papers\n" + "   naïve café " * 20 + "\n"
    rendered = RenderedDigest("Subject", "<p>caf&#233;</p>", text)
    message = delivery_message.build_message(smtp, UserConfig(email="ada@example.org"), rendered, "<d.1.1.x@example.org>",
                                     "https://r.example/u/t", "", datetime(2026, 3, 21, 7, 30, tzinfo=UTC))
    outcomes = []
    asyncio.run(delivery.SmtpSender(smtp).send_stream(_one_batch([delivery.Outgoing(1, "ada@example.org", message)]),
                                                      outcomes.append))
    assert [o.status for o in outcomes] == ["sent"]
    raw, options = smtp_server.box.raw[0], smtp_server.box.mail_options[0]
    assert ("BODY=8BITMIME" in options) == offered
    assert (f"SIZE={len(raw)}" in options) == ehlo  # RFC 1870: the octets DATA carried, where EHLO offers SIZE
    assert raw.isascii() != offered
    received = smtp_server.box.messages[0]
    assert received.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert received.get_body(("html",)).get_content().strip() == "<p>caf&#233;</p>"
    assert str(received["Message-ID"]) == "<d.1.1.x@example.org>" and not received.defects


async def _one_batch(items: list) -> AsyncIterator[list]:
    yield items


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "é", " ", "\r", "\n", "\r\n", "\x0b", "\x85", "\u2028"]), max_size=30).map("".join)
       | st.text(max_size=40))
def test_message_lines_end_in_crlf_where_bytes_splitlines_ends_them(text: str):
    from recommender.digest.message import _crlf_lines

    assert _crlf_lines(text) == b"".join(line + b"\r\n" for line in text.encode("utf-8").splitlines() or [b""])


def _many_users(n: int) -> str:
    return "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\nmax_items = 2\n' for i in range(n))


def test_digest_send_delivers_from_a_second_process_while_it_queues(tmp_path: Path, smtp_server: SmtpServer,
                                                                     database_url: str):
    config, store = _setup(tmp_path, smtp_server.port, database_url, users=_many_users(60), max_connections=4)
    results = digests.run(config, store, config.users, _clock, deliver_while_queueing=True)
    assert [(r.status, r.papers) for r in results] == [("sent", 2)] * 60
    received = sorted(str(m["To"]) for m in smtp_server.box.messages)
    assert received == sorted(f"u{i:03d}@example.org" for i in range(60))  # each exactly once
    assert {i.status for i in Outbox(store).items()} == {"sent"}
    assert digests.run(config, store, config.users, _clock, deliver_while_queueing=True)[0].status == "nothing new"


def test_digest_send_for_many_users_queues_from_two_processes_and_sends_each_one_digest(
        tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    """The command: a forked child ranks, renders and stores half of the digests while the
    command does the other half (and a third process delivers); their ids never collide."""
    import os
    import subprocess

    from conftest import recommender_command

    users = pipeline.PARALLEL_USERS + 10
    config, store = _setup(tmp_path, smtp_server.port, database_url, users=_many_users(users), max_connections=4)
    done = subprocess.run(recommender_command("-v", "--config", str(tmp_path / "config.toml"), "digest", "send"),
                          cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"queueing the digests of {users} users in 2 processes" in done.stderr
    received = sorted(str(m["To"]) for m in smtp_server.box.messages)
    assert received == sorted(f"u{i:03d}@example.org" for i in range(users))  # each exactly once
    items = Outbox(store).items()
    assert len(items) == users and {i.status for i in items} == {"sent"}
    assert len({i.message_id for i in items}) == users
    assert sorted(str(m["Message-ID"]) for m in smtp_server.box.messages) == sorted(i.message_id for i in items)
    store.close()


def test_when_the_second_renderer_dies_its_users_still_get_one_digest_each(tmp_path: Path, database_url: str,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """The child that queues half of the users dies after storing some digests: this process
    queues the rest of its half, and nobody gets a second digest."""
    import os

    from recommender.base import parallel

    config, store = _setup(tmp_path, free_port(), database_url, users=_many_users(60))
    monkeypatch.setattr(pipeline, "PARALLEL_USERS", 20)
    parent, queue_chunk = os.getpid(), digests._queue_chunk

    def dies_after_its_first_chunk(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        results = queue_chunk(*args, **kwargs)
        if os.getpid() != parent:
            os._exit(1)  # stored, then gone without a word
        return results

    monkeypatch.setattr(digests, "_queue_chunk", dies_after_its_first_chunk)
    assert parallel.can_fork(), f"threads left running by earlier tests: {__import__('threading').enumerate()}"
    results = digests.queue_digests(digests.DigestWork(config, store, _clock), config.users, chunk=10, parallel_parts=True)
    assert sorted(i.email for i in Outbox(store).items()) == sorted(u.email for u in config.users)  # one each
    statuses = [results[u.email].status for u in config.users]
    assert statuses[:30] == ["queued"] * 30  # this process's half
    assert statuses[30:40] == ["nothing new"] * 10  # the child stored these before it died
    assert statuses[40:] == ["queued"] * 20  # the rest of the child's half, done here
    store.close()


def test_the_delivery_child_reports_what_it_sent(tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    config, store = _setup(tmp_path, smtp_server.port, database_url, users=_many_users(20))
    digests.queue_digests(digests.DigestWork(config, store, _clock), config.users)
    ids = list(store.sync_users(u.email for u in config.users).values())
    pending = {i.id for i in Outbox(store).items("pending")}
    child = digests.DeliveryProcess(digests.DigestWork(config, store, _clock), ids)
    child.everything_queued()
    outcomes = child.finish()
    assert sorted(o.digest_id for o in outcomes) == sorted(pending) and {o.status for o in outcomes} == {"sent"}
    assert len(smtp_server.box.messages) == 20
    assert digests.deliver_pending(digests.DigestWork(config, store, _clock), ids) == []  # nothing left for the parent


def test_connections_stay_open_from_one_claimed_batch_to_the_next(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, users=_many_users(20), max_connections=2)
    digests.queue_digests(digests.DigestWork(config, store, _clock), config.users)
    outcomes = digests.deliver_pending(digests.DigestWork(config, store, _clock), claiming=digests.Claiming(batch_size=3))  # seven claims
    assert len(outcomes) == 20 and {o.status for o in outcomes} == {"sent"}
    assert sorted(str(m["To"]) for m in smtp_server.box.messages) == [f"u{i:03d}@example.org" for i in range(20)]
    assert len(set(smtp_server.box.peers)) == 2  # two connections carried all seven batches


def test_a_delivery_child_polls_until_everything_is_queued(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, users=_many_users(12), max_connections=2)
    ids = list(store.sync_users(u.email for u in config.users).values())
    child = digests.DeliveryProcess(digests.DigestWork(config, store, _clock), ids)
    digests.queue_digests(digests.DigestWork(config, store, _clock), config.users[:5])  # queued while the child polls
    deadline = time.monotonic() + 30
    while len(smtp_server.box.messages) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    digests.queue_digests(digests.DigestWork(config, store, _clock), config.users[5:])
    child.everything_queued()
    outcomes = child.finish()
    assert len(outcomes) == 12 and {o.status for o in outcomes} == {"sent"}
    assert sorted(str(m["To"]) for m in smtp_server.box.messages) == [f"u{i:03d}@example.org" for i in range(12)]
    assert len(set(smtp_server.box.peers)) <= 2  # the connections waited open while the outbox was empty


def test_a_delivery_child_killed_midway_leaves_the_rest_to_the_parent(tmp_path: Path, smtp_server: SmtpServer):
    import os
    import signal

    config, store = _setup(tmp_path, smtp_server.port, users=_many_users(30), max_connections=2)
    smtp_server.box.data_seconds = 0.05
    digests.queue_digests(digests.DigestWork(config, store, _clock), config.users)
    ids = list(store.sync_users(u.email for u in config.users).values())
    child = digests.DeliveryProcess(digests.DigestWork(config, store, _clock), ids)
    child.everything_queued()
    deadline = time.monotonic() + 30
    while len(smtp_server.box.messages) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child._process.pid, signal.SIGKILL)
    assert child.finish() == []  # it died without reporting
    rest = digests.deliver_pending(digests.DigestWork(config, store, _clock), ids)
    assert rest and {o.status for o in rest} == {"sent"}
    by_recipient: dict[str, set[str]] = {}
    copies: dict[str, int] = {}
    for message in smtp_server.box.messages:
        by_recipient.setdefault(str(message["To"]), set()).add(str(message["Message-ID"]))
        copies[str(message["To"])] = copies.get(str(message["To"]), 0) + 1
    assert sorted(by_recipient) == sorted(f"u{i:03d}@example.org" for i in range(30))  # nobody lost
    assert all(len(ids) == 1 for ids in by_recipient.values())  # a second copy has the same Message-ID
    assert sum(n - 1 for n in copies.values()) <= 2  # only what was in flight on its 2 connections
    assert {i.status for i in Outbox(store).items()} == {"sent"}


def test_messages_are_rendered_outside_the_write_and_carry_the_ids_their_rows_get(database_url: str):
    """create_many renders before taking the write lock, for ids it reserved; another writer
    queueing meanwhile gets other ids, so nothing is rendered twice (two processes can render
    digests at once)."""
    from recommender.store.outbox import DigestToCreate, NewDigest

    store, other = Store.open(database_url), Store.open(database_url)
    store.upgrade_schema()
    user = store.sync_users(["ada@example.org"])["ada@example.org"]
    rendered_for: list[int] = []

    def render(digest_id: int) -> NewDigest:
        if not rendered_for:  # another process queues a digest while this one renders
            Outbox(other).create_many([DigestToCreate(user, 1, [], lambda i: NewDigest("other", f"<o{i}@x>", b"o"))])
        rendered_for.append(digest_id)
        return NewDigest(f"digest {digest_id}", f"<d{digest_id}@x>", f"message of {digest_id}".encode())

    ids = Outbox(store).create_many([DigestToCreate(user, 1, [], render) for _ in range(3)])
    items = {i.id: i for i in Outbox(store).items()}
    assert len(items) == 4 and len(set(ids)) == 3
    for digest_id in ids:
        assert items[digest_id].subject == f"digest {digest_id}"
        assert items[digest_id].message_id == f"<d{digest_id}@x>"
    assert [i.subject for i in items.values() if i.id not in ids] == ["other"]
    assert rendered_for == ids  # each rendered once, for the id its row got
    store.close()
    other.close()
