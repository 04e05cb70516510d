"""Faults injected for real: SMTP outages, temporary and permanent replies, slow servers,
TLS trouble, processes killed at random moments, a locked or full database."""

from __future__ import annotations

import asyncio
import os
import random
import resource
import signal
import sqlite3
import ssl
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from recommender import pipeline
from recommender.base.config import load_config
from recommender.delivery.smtp import DeliveryAborted
from recommender.pipeline import digests
from recommender.store import Store
from recommender.store.outbox import Outbox

from conftest import SEEDS, recommender_command, smtp_section, write_config
from smtp_server import SmtpServer, free_port


def _users(n: int) -> str:
    return "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\nmax_items = 2\n' for i in range(n))


def _setup(tmp_path: Path, port: int, users: int, **smtp: object):
    path = write_config(tmp_path, users=_users(users), extra=smtp_section(port, **smtp))
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    return path, config, store


def _now() -> datetime:
    return datetime.now(UTC)


def _check_integrity(database: Path) -> None:
    conn = sqlite3.connect(database)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


class Flaky:
    """Wraps a server's handler: answer DATA with ``reply`` for the first ``times`` messages."""

    def __init__(self, server: SmtpServer, reply: str, times: int):
        handler = server._controller.handler  # type: ignore[union-attr]
        self.original, self.reply, self.left = handler.handle_DATA, reply, times
        handler.handle_DATA = self.handle

    async def handle(self, server, session, envelope):  # noqa: ANN001 - aiosmtpd hook
        if self.left > 0:
            self.left -= 1
            return self.reply
        return await self.original(server, session, envelope)


@pytest.mark.parametrize("reply", ["421 4.3.0 try again later", "451 4.7.1 greylisted"])
def test_temporary_replies_are_retried_until_delivered(tmp_path: Path, smtp_server: SmtpServer, reply: str):
    Flaky(smtp_server, reply, times=3)
    _, config, store = _setup(tmp_path, smtp_server.port, 2, max_attempts=6)
    results = digests.run(config, store, config.users, _now)
    assert [r.status for r in results] == ["sent", "sent"]
    assert Counter(str(m["To"]) for m in smtp_server.box.messages) == {"u000@example.org": 1, "u001@example.org": 1}


def test_server_down_midway_through_100_users(tmp_path: Path):
    port = free_port()
    server = SmtpServer(port).start()
    _, config, store = _setup(tmp_path, port, 100, max_attempts=2, max_connections=2)

    def stop_midway() -> None:
        while len(server.box.messages) < 30:
            time.sleep(0.005)
        server.stop()

    stopper = threading.Thread(target=stop_midway)
    stopper.start()
    first = digests.run(config, store, config.users, _now)
    stopper.join()
    delivered_before = len(server.box.messages)
    assert 30 <= delivered_before < 100
    assert {r.status for r in first} <= {"sent", "deferred"} and any(r.status == "deferred" for r in first)
    later = SmtpServer(port)
    later.box = server.box  # the same mailbox: count every copy ever received
    later.start()
    try:
        with store.write() as conn:  # the retry time of deferred digests has come
            conn.exec_driver_sql("UPDATE digests SET next_attempt_at = NULL")
        digests.run(config, store, config.users, _now)
    finally:
        later.stop()
    received = Counter(str(m["To"]) for m in server.box.messages)
    assert len(received) == 100
    for user, copies in received.items():
        if copies > 1:  # only a message in flight at the outage, and then the same message
            assert len({str(m["Message-ID"]) for m in server.box.to(user)}) == 1
    assert sum(c - 1 for c in received.values()) <= 2
    assert Counter(i.status for i in Outbox(store).items()) == {"sent": 100}


def test_a_slow_server_still_gets_everything(tmp_path: Path, smtp_server: SmtpServer):
    handler = smtp_server._controller.handler  # type: ignore[union-attr]
    original = handler.handle_DATA

    async def slow(server, session, envelope):  # noqa: ANN001 - aiosmtpd hook
        await asyncio.sleep(10)
        return await original(server, session, envelope)

    handler.handle_DATA = slow
    _, config, store = _setup(tmp_path, smtp_server.port, 3, timeout_seconds=30, max_connections=3)
    started = time.monotonic()
    results = digests.run(config, store, config.users, _now)
    assert [r.status for r in results] == ["sent"] * 3
    assert time.monotonic() - started < 25  # concurrently, not one after the other
    assert len(smtp_server.box.messages) == 3


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="no openssl")
def test_tls_against_a_plain_server_fails_at_once_then_tls_delivers(tmp_path: Path, smtp_server: SmtpServer):
    from aiosmtpd.controller import Controller

    cert, key = _self_signed(tmp_path)
    # A plain server while the config asks for TLS: the handshake fails, nothing is lost.
    path, config, store = _setup(tmp_path, smtp_server.port, 1, ca_file=str(cert))
    path.write_text(path.read_text().replace('security = "none"', 'security = "tls"'))
    config = load_config(path)
    # A TLS client meeting a plain server finds no server it can speak to: one error naming the
    # settings, nothing deferred, so the fixed config is tried at once.
    with pytest.raises(DeliveryAborted, match=r"check \[smtp\] host and port \(and security = \"tls\""):
        digests.run(config, store, config.users, _now)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    from smtp_server import Mailbox, _Handler

    box = Mailbox()
    port = free_port()
    tls_server = Controller(_Handler(box), hostname="127.0.0.1", port=port, ssl_context=context)
    tls_server.start()
    try:
        path.write_text(path.read_text().replace(f"port = {smtp_server.port}", f"port = {port}"))
        config = load_config(path)
        assert digests.run(config, store, config.users, _now)[0].status == "sent"
        assert len(box.messages) == 1 and smtp_server.box.messages == []
    finally:
        tls_server.stop()


def test_killed_at_ten_random_moments_nothing_lost(tmp_path: Path):
    """`digest send` is SIGKILLed at seeded random moments while a slow server receives; after
    each restart nothing is lost, and only an in-flight message may arrive twice (same id)."""
    server = SmtpServer()
    server.start()
    handler = server._controller.handler  # type: ignore[union-attr]
    original = handler.handle_DATA

    async def slowish(smtp, session, envelope):  # noqa: ANN001 - aiosmtpd hook
        await asyncio.sleep(0.02)
        return await original(smtp, session, envelope)

    handler.handle_DATA = slowish
    try:
        path, config, store = _setup(tmp_path, server.port, 60, max_connections=2)
        rng = random.Random(20261121)
        command = recommender_command("--config", str(path), "digest", "send")
        for _ in range(10):
            process = subprocess.Popen(command, cwd=tmp_path, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 2.5))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            _check_integrity(tmp_path / "db" / "recommender.sqlite")
        final = subprocess.run(command, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        received = Counter(str(m["To"]) for m in server.box.messages)
        assert len(received) == 60
        for user, copies in received.items():
            if copies > 1:
                assert len({str(m["Message-ID"]) for m in server.box.to(user)}) == 1
        assert sum(c - 1 for c in received.values()) <= 10 * 2  # at most the in-flight ones per kill
        assert Counter(i.status for i in Outbox(store).items()) == {"sent": 60}
        _check_integrity(tmp_path / "db" / "recommender.sqlite")
    finally:
        server.stop()


def test_a_locked_database_waits_then_fails_clearly(tmp_path: Path, run):
    path = write_config(tmp_path)
    run("init", config=path)
    run("ingest", *map(str, SEEDS[:1]), config=path)
    paper_id = Store.open(load_config(path).database.url).papers()[0].id
    holder = sqlite3.connect(tmp_path / "db" / "recommender.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    run("star", paper_id, config=path)  # waits on the busy timeout, then succeeds
    assert time.monotonic() - started >= 1.0
    release.join()
    env = dict(os.environ, RECOMMENDER_BUSY_TIMEOUT="1")
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = subprocess.run(recommender_command("--config", str(path), "unstar", paper_id), cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1 and result.stderr.startswith("Error: database error: database is locked")
    assert "Traceback" not in result.stderr
    _check_integrity(tmp_path / "db" / "recommender.sqlite")


def test_disk_full_while_ingesting_keeps_the_database_intact(tmp_path: Path, run):
    path = write_config(tmp_path)
    run("init", config=path)
    run("ingest", *map(str, SEEDS[:1]), config=path)
    database = tmp_path / "db" / "recommender.sqlite"
    big = tmp_path / "big.jsonl"
    big.write_text("".join(f'{{"id": "big{i}", "title": "Paper {i}", "abstract": "{"words " * 400}"}}\n'
                           for i in range(3000)))
    limit = sum(f.stat().st_size for f in database.parent.glob("recommender.sqlite*")) + 200_000

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(recommender_command("--config", str(path), "ingest", str(big)), cwd=tmp_path,
                            env=dict(os.environ), capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert result.returncode != 0 and result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    _check_integrity(database)
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT count(*) FROM papers").fetchone() == (98,)
    assert conn.execute("SELECT count(*) FROM batches").fetchone() == (1,)


def test_daemon_killed_mid_run_sends_everything_after_restart(tmp_path: Path):
    """`recommender run` is SIGKILLed at seeded random moments while its digests go out; each
    restart catches up the missed run (within the grace period) and sends what is pending."""
    from datetime import timedelta

    server = SmtpServer()
    server.start()
    handler = server._controller.handler  # type: ignore[union-attr]
    original = handler.handle_DATA

    async def slowish(smtp, session, envelope):  # noqa: ANN001 - aiosmtpd hook
        await asyncio.sleep(0.05)
        return await original(smtp, session, envelope)

    handler.handle_DATA = slowish
    try:
        def users(due: datetime) -> str:
            return "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\ntimezone = "UTC"\nmax_items = 2\n'
                           f'send_at = "{due:%H:%M:%S}"\n' for i in range(40))

        extra = smtp_section(server.port, max_connections=1)
        path = write_config(tmp_path, users=users(datetime.now(UTC)), extra=extra)
        init = subprocess.run(recommender_command("--config", str(path), "init"), cwd=tmp_path, capture_output=True)
        assert init.returncode == 0
        subprocess.run(recommender_command("--config", str(path), "ingest", str(SEEDS[0])), cwd=tmp_path, check=True,
                       capture_output=True)
        write_config(tmp_path, users=users(datetime.now(UTC) + timedelta(seconds=5)), extra=extra)  # due soon
        rng = random.Random(5)
        command = recommender_command("--config", str(path), "run")
        for attempt in range(4):
            daemon = subprocess.Popen(command, cwd=tmp_path, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            target = len(server.box.messages) + rng.randint(3, 8)
            while len(server.box.messages) < min(target, 40) and time.monotonic() < deadline:
                time.sleep(0.02)
            if attempt < 3:
                daemon.send_signal(signal.SIGKILL)
                daemon.wait(timeout=10)
                _check_integrity(tmp_path / "db" / "recommender.sqlite")
        deadline = time.monotonic() + 60
        while len({str(m["To"]) for m in server.box.messages}) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        received = Counter(str(m["To"]) for m in server.box.messages)
        assert len(received) == 40
        for user, copies in received.items():
            if copies > 1:
                assert len({str(m["Message-ID"]) for m in server.box.to(user)}) == 1
        _check_integrity(tmp_path / "db" / "recommender.sqlite")
    finally:
        server.stop()
