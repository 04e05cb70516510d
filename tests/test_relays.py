"""Delivery through SMTP servers configured the way real relays are: without 8BITMIME or
SMTPUTF8, deferring and refusing chosen recipients, dropping the connection mid-DATA, refusing
the login; headers checked on the bytes the server received."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import subprocess
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from recommender import pipeline
from recommender.base.config import Config, load_config
from recommender.base.errors import DeliveryError
from recommender.delivery.smtp import DeliveryAborted
from recommender.pipeline import digests
from recommender.pipeline.web_site import web_app
from recommender.store import Store
from recommender.store.outbox import Outbox

from conftest import SEEDS, recommender_command, smtp_section, write_config
from smtp_server import SmtpServer

USERS = """
[[users]]
email = "ada@example.org"
name = "Ada Lovelace"
[[users]]
email = "bob@example.org"
[[users]]
email = "cy@example.org"
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _setup(tmp_path: Path, port: int, users: str = USERS, **smtp: object):
    path = write_config(tmp_path, users=users, extra=smtp_section(port, **smtp))
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    return path, config, store


def _header_block(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[0]


def _lines(results) -> dict[str, str]:
    return {r.email: r.line() for r in results}


def test_without_8bitmime_only_the_parts_are_re_encoded_and_list_unsubscribe_stays_a_url(tmp_path: Path):
    server = SmtpServer().start()
    server.box.eight_bit_mime = False
    try:
        _, config, store = _setup(tmp_path, server.port)
        results = digests.run(config, store, config.users, _now)
        assert [r.status for r in results] == ["sent"] * 3
        for raw in server.box.raw:
            assert raw.isascii()
            head = _header_block(raw)
            unsubscribe = re.search(rb"^List-Unsubscribe: (.*?)\r\n(?![ \t])", head, re.M | re.S)
            assert unsubscribe is not None and unsubscribe.group(1).startswith(b"<http://127.0.0.1:8080/unsubscribe/")
            assert b"=?" not in unsubscribe.group(1)
            assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in head + b"\r\n"
            message_id = email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]
            item = next(i for i in Outbox(store).items() if i.message_id == message_id)
            original = digests.message_of(digests.DigestWork(config, store), item.id)
            assert head == _header_block(original)  # the header block byte for byte as built
            sent, built = (email.message_from_bytes(m, policy=email.policy.default) for m in (raw, original))
            for kind in ("plain", "html"):
                assert sent.get_body((kind,)).get_content() == built.get_body((kind,)).get_content()
                assert sent.get_body((kind,))["Content-Transfer-Encoding"] != "8bit"
    finally:
        server.stop()


@pytest.mark.parametrize("smtputf8", [False, True])
def test_an_international_address_goes_with_smtputf8_or_fails_alone(tmp_path: Path, smtputf8: bool):
    server = SmtpServer(smtputf8=smtputf8).start()
    try:
        users = USERS + '[[users]]\nemail = "zoë@example.net"\nname = "Zoë"\n'
        _, config, store = _setup(tmp_path, server.port, users=users)
        results = {r.email: r for r in digests.run(config, store, config.users, _now)}
        assert {e: r.status for e, r in results.items() if e != "zoë@example.net"} == dict.fromkeys(
            ["ada@example.org", "bob@example.org", "cy@example.org"], "sent")
        zoe = results["zoë@example.net"]
        if smtputf8:
            assert zoe.status == "sent"
            index = [rcpts for _, rcpts in server.box.envelopes].index(["zoë@example.net"])
            assert "SMTPUTF8" in [o.upper() for o in server.box.mail_options[index]]
            assert "zoë@example.net" in server.box.raw[index].decode("utf-8")  # RFC 6532: the header in UTF-8
        else:
            assert zoe.status == "failed" and "SMTPUTF8" in zoe.detail and "zoë@example.net" in zoe.detail
            assert len(server.box.messages) == 3
    finally:
        server.stop()


def test_chosen_recipients_deferred_and_refused_each_get_their_own_state(tmp_path: Path, run):
    server = SmtpServer().start()
    server.box.rcpt_replies = {"bob@example.org": "450 4.2.1 mailbox busy", "cy@example.org": "550 5.1.1 no such user"}
    try:
        path, config, store = _setup(tmp_path, server.port, max_attempts=2, retry_delay_seconds=3600)
        started = _now()
        lines = _lines(digests.run(config, store, config.users, _now))
        assert lines["ada@example.org"].startswith("ada@example.org: sent ")
        deferred = re.fullmatch(r"bob@example\.org: deferred until (\S+ \S+) UTC: 450 4\.2\.1 mailbox busy",
                                lines["bob@example.org"])
        assert deferred is not None
        until = datetime.strptime(deferred.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert 3590 <= (until - started).total_seconds() <= 3700  # smtp.retry_delay_seconds
        assert lines["cy@example.org"] == "cy@example.org: failed: 550 5.1.1 no such user"
        # At once again: still deferred (not "nothing new"), and the CLI says so with exit 1.
        again = run("digest", "send", config=path, code=1)
        assert re.search(r"^bob@example\.org: deferred until .* 450 4\.2\.1 mailbox busy$", again.output, re.M)
        assert "ada@example.org: nothing new" in again.output
        # `outbox retry` sends the deferred one now.
        server.box.rcpt_replies = {}
        retried = run("outbox", "retry", config=path)
        assert retried.exit_code == 0, retried.output
        # (cy's digest, refused again by the second run, is retried too)
        assert Counter(e[1][0] for e in server.box.envelopes) == {"ada@example.org": 1, "bob@example.org": 1,
                                                                  "cy@example.org": 1}
    finally:
        server.stop()


def test_a_failed_digest_is_superseded_by_the_next_so_no_paper_goes_twice(tmp_path: Path, run):
    server = SmtpServer().start()
    server.box.data_reply = "554 5.7.1 rejected"
    try:
        path, config, store = _setup(tmp_path, server.port)
        assert {r.status for r in digests.run(config, store, config.users, _now)} == {"failed"}
        server.box.data_reply = None
        assert {r.status for r in digests.run(config, store, config.users, _now)} == {"sent"}
        retried = run("outbox", "retry", config=path)
        assert retried.exit_code == 0 and "requeued 0" in retried.output
        for user in ("ada@example.org", "bob@example.org", "cy@example.org"):
            assert len(server.box.to(user)) == 1
        statuses = Counter(i.status for i in Outbox(store).items())
        assert statuses == {"superseded": 3, "sent": 3}
    finally:
        server.stop()


def test_a_connection_dropped_mid_data_is_retried_with_the_same_message_id(tmp_path: Path):
    server = SmtpServer().start()
    server.box.drop_data = 1
    try:
        _, config, store = _setup(tmp_path, server.port, max_connections=1)
        assert [r.status for r in digests.run(config, store, config.users, _now)] == ["sent"] * 3
        assert Counter(i.status for i in Outbox(store).items()) == {"sent": 3}
        assert len(server.box.messages) == 3  # the dropped transfer was not taken
    finally:
        server.stop()


def _unsubscribe_link(config: Config, store: Store, user: str) -> str:
    item = [i for i in Outbox(store).items() if i.email == user][-1]
    message = email.message_from_bytes(digests.message_of(digests.DigestWork(config, store), item.id),
                                      policy=email.policy.default)
    return re.search(r"<(http://127\.0\.0\.1:8080/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"])).group(1)


def test_unsubscribing_while_a_digest_waits_for_a_retry_stops_it(tmp_path: Path, run):
    server = SmtpServer().start()
    server.box.rcpt_replies = {"bob@example.org": "451 4.7.1 greylisted"}
    try:
        path, config, store = _setup(tmp_path, server.port, max_attempts=1)
        digests.run(config, store, config.users, _now)
        link = _unsubscribe_link(config, store, "bob@example.org")
        with TestClient(web_app(config, store), base_url="http://127.0.0.1:8080") as client:
            # RFC 8058: what a provider sends, as multipart/form-data.
            response = client.post(link, files={"List-Unsubscribe": (None, "One-Click")})
            assert response.status_code == 200, response.text
        server.box.rcpt_replies = {}
        retried = run("outbox", "retry", config=path)
        assert retried.exit_code == 0, retried.output
        assert server.box.to("bob@example.org") == []
        bob = [i for i in Outbox(store).items() if i.email == "bob@example.org"]
        assert [i.status for i in bob] == ["unsubscribed"]  # marked, not deleted
        again = run("digest", "send", "--user", "bob@example.org", config=path)
        assert again.output.startswith("bob@example.org: unsubscribed")
    finally:
        server.stop()


@pytest.mark.parametrize("form", ["multipart", "urlencoded", "query"])
def test_one_click_unsubscribe_in_every_form_a_provider_posts(tmp_path: Path, form: str):
    server = SmtpServer().start()
    try:
        _, config, store = _setup(tmp_path, server.port)
        digests.queue_digests(digests.DigestWork(config, store, _now), config.users)
        link = _unsubscribe_link(config, store, "ada@example.org")
        with TestClient(web_app(config, store), base_url="http://127.0.0.1:8080") as client:
            assert client.post(link, files={"Other": (None, "One-Click")}).status_code == 400
            if form == "multipart":
                response = client.post(link, files={"List-Unsubscribe": (None, "One-Click")})
            elif form == "urlencoded":
                response = client.post(link, data={"List-Unsubscribe": "One-Click"})
            else:
                response = client.post(link + "?List-Unsubscribe=One-Click")
            assert response.status_code == 200
        assert store.user_id("ada@example.org") in Outbox(store).unsubscribed()
    finally:
        server.stop()


def test_a_refused_login_fails_the_run_once_on_the_first_connection(tmp_path: Path, run, monkeypatch):
    server = SmtpServer(password="right-password").start()
    monkeypatch.setenv("RECOMMENDER_SMTP_PASSWORD", "wrong-password")
    try:
        path, config, store = _setup(tmp_path, server.port, username="digest", allow_plaintext_auth=True,
                                     max_connections=4, max_attempts=5)
        with pytest.raises(DeliveryAborted, match="refused the login"):
            digests.run(config, store, config.users, _now)
        assert len(server.box.auth_sessions) == 1  # one connection tried, not one per recipient
        result = run("digest", "send", config=path, code=1)
        assert result.exit_code == 1 and result.output.count("Error:") == 1
        assert "refused the login of 'digest'" in result.output and "Traceback" not in result.output
        assert len(server.box.auth_sessions) == 2  # one more run, one more connection
        assert Counter(i.status for i in Outbox(store).items()) == {"pending": 3}  # owed, not failed
        monkeypatch.setenv("RECOMMENDER_SMTP_PASSWORD", "right-password")
        assert {r.status for r in digests.run(load_config(path), store, config.users, _now)} == {"sent"}
    finally:
        server.stop()


def test_an_unset_password_or_plaintext_login_is_refused_before_connecting(tmp_path: Path, run):
    server = SmtpServer().start()
    try:
        path, config, store = _setup(tmp_path, server.port, username="digest", allow_plaintext_auth=True)
        with pytest.raises(DeliveryError, match=r"\$RECOMMENDER_SMTP_PASSWORD is not set"):
            digests.run(config, store, config.users, _now)
        result = run("digest", "send", config=path, code=1)
        assert result.exit_code == 1 and "RECOMMENDER_SMTP_PASSWORD is not set" in result.output
        assert server.box.envelopes == [] and Outbox(store).items() == []
        path.write_text(path.read_text().replace("allow_plaintext_auth = true\n", ""))
        checked = run("config", "check", config=path, code=2)
        assert checked.exit_code == 2 and "clear text" in checked.output
    finally:
        server.stop()


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="no openssl")
def test_an_untrusted_certificate_fails_the_run_once_then_ca_file_and_server_name_deliver(tmp_path: Path):
    import ssl

    from aiosmtpd.controller import Controller

    from smtp_server import Mailbox, _Handler, free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=mail.example.test", "-addext", "subjectAltName=DNS:mail.example.test"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box, port = Mailbox(), free_port()
    connections = []

    class Counting(_Handler):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802, ANN001
            connections.append(hostname)
            return await super().handle_EHLO(server, session, envelope, hostname, responses)

    tls_server = Controller(Counting(box), hostname="127.0.0.1", port=port, ssl_context=context)
    tls_server.start()
    try:
        path, config, store = _setup(tmp_path, port, security="tls", max_attempts=5)
        started = datetime.now(UTC)
        with pytest.raises(DeliveryAborted, match="did not verify"):
            digests.run(config, store, config.users, _now)
        assert (datetime.now(UTC) - started).total_seconds() < 5  # no backoff for what cannot heal
        # Trusted, but issued for another name than the address we connect to:
        path.write_text(path.read_text() + f'ca_file = "{cert}"\n')
        with pytest.raises(DeliveryAborted, match="did not verify"):
            digests.run(load_config(path), store, config.users, _now)
        path.write_text(path.read_text() + 'tls_server_name = "mail.example.test"\n')
        assert {r.status for r in digests.run(load_config(path), store, config.users, _now)} == {"sent"}
        assert len(box.messages) == 3
    finally:
        tls_server.stop()


def _rsa_key(folder: Path) -> tuple[Path, bytes]:
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return key, base64.b64encode(public)


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="no openssl")
@pytest.mark.parametrize("eight_bit", [True, False])
def test_dkim_signature_covers_both_list_unsubscribe_headers_and_verifies_as_received(tmp_path: Path,
                                                                                      eight_bit: bool):
    import dkim

    key, public = _rsa_key(tmp_path)
    server = SmtpServer().start()
    server.box.eight_bit_mime = eight_bit
    try:
        _, config, store = _setup(tmp_path, server.port, dkim_selector="digest", dkim_domain="example.org",
                                  dkim_key_file=str(key))
        assert {r.status for r in digests.run(config, store, config.users, _now)} == {"sent"}

        def dns(name: bytes, timeout: int = 5) -> bytes:
            assert name == b"digest._domainkey.example.org."
            return b"v=DKIM1; k=rsa; p=" + public

        for raw in server.box.raw:
            assert raw.startswith(b"DKIM-Signature:")
            signed = re.search(rb"h=([^;]+);", raw.partition(b"\r\n\r\n")[0].replace(b"\r\n", b"").replace(b" ", b""))
            headers = {h.lower() for h in signed.group(1).split(b":")}
            assert {b"list-unsubscribe", b"list-unsubscribe-post", b"from", b"subject"} <= headers
            assert dkim.verify(raw, dnsfunc=dns)
            assert not dkim.verify(raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                               b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click"), dnsfunc=dns)
    finally:
        server.stop()


def test_config_check_reports_every_error_in_one_run_and_warnings_apart(tmp_path: Path, run):
    path = write_config(tmp_path, users='[[users]]\nemail = "ada@example"\n[[users]]\nemail = "zoë@example.net"\n',
                        extra='[smtp]\nfrom = "Paper Digest"\nport = 70000\n[feedback]\nbase_url = "http://digest.example.net"\n')
    result = run("config", "check", config=path, code=2)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert any("users[0].email" in e for e in errors)
    assert any("smtp.from" in e and "Paper Digest" in e for e in errors)
    assert any("smtp.port" in e for e in errors)
    assert len(errors) == 3
    fixed = path.read_text().replace('"ada@example"', '"ada@example.org"').replace('"Paper Digest"', '"Paper Digest <digest@example.org>"').replace("70000", "587")
    path.write_text(fixed)
    result = run("config", "check", config=path)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert any("https://" in w and "base_url" in w for w in warnings)
    assert any("example sender" in w for w in warnings)
    assert any("zoë@example.net" in w and "SMTPUTF8" in w for w in warnings)
    path.write_text(fixed.replace('"Paper Digest <digest@example.org>"', '"Paper Digest\\r\\nBcc: x@evil.example <d@lab.example>"'))
    result = run("config", "check", config=path, code=2)
    assert result.exit_code == 2 and "smtp.from: must be one line" in result.output


def test_the_html_separates_its_action_links_and_an_unpersonalized_digest_says_so_once(tmp_path: Path):
    server = SmtpServer().start()
    try:
        _, config, store = _setup(tmp_path, server.port, users='[[users]]\nemail = "ada@example.org"\nmax_items = 5\n')
        assert digests.run(config, store, config.users, _now)[0].status == "sent"
        message = server.box.messages[0]
        html, text = (message.get_body((k,)).get_content() for k in ("html", "plain"))
        assert "</a><a" not in html.replace(" ", "").replace("\n", "") or "</a><a" not in html
        assert not re.search(r"</a>\s*<a", html)
        assert html.count("Not personalized") == 1 and text.count("Not personalized") == 1
    finally:
        server.stop()


def test_digest_preview_eml_writes_the_exact_message(tmp_path: Path, run):
    server = SmtpServer().start()
    try:
        path, config, store = _setup(tmp_path, server.port)
        target = tmp_path / "preview.eml"
        result = run("digest", "preview", "--user", "ada@example.org", "--eml", str(target), config=path)
        assert result.exit_code == 0, result.output
        raw = target.read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.strict)
        assert message["To"].addresses[0].addr_spec == "ada@example.org"
        assert str(message["List-Unsubscribe"]).startswith("<http://127.0.0.1:8080/unsubscribe/")
        assert message.get_body(("plain",)) is not None and b"\r\n" in raw
    finally:
        server.stop()


def test_digest_send_lines_name_each_user_and_their_state(tmp_path: Path):
    server = SmtpServer().start()
    try:
        path, config, store = _setup(tmp_path, server.port)
        done = subprocess.run(recommender_command("--config", str(path), "digest", "send"), cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert [line.split(":")[0] for line in done.stdout.splitlines()] == [
            "ada@example.org", "bob@example.org", "cy@example.org"]
        again = subprocess.run(recommender_command("--config", str(path), "digest", "send"), cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert again.stdout.splitlines() == [f"{u}: nothing new" for u in
                                             ("ada@example.org", "bob@example.org", "cy@example.org")]
    finally:
        server.stop()
