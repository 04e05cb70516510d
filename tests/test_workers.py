"""Many `recommender worker` processes sending from one outbox: every user gets exactly one
digest, and a worker killed mid-run loses nothing (SQLite and PostgreSQL); on PostgreSQL, a
worker and the scheduler killed mid-run neither."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from recommender import pipeline
from recommender.base.config import load_config
from recommender.pipeline import digests, shards
from recommender.store import Store
from recommender.store.outbox import Outbox
from recommender.store.schedule import ReaderSchedule

from conftest import SEEDS, recommender_command, smtp_section, wait_until, write_config
from smtp_server import SmtpServer


def _queue(tmp_path: Path, database_url: str, port: int, users: int) -> Path:
    listing = "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\nmax_items = 2\n' for i in range(users))
    path = write_config(tmp_path, users=listing, database_url=database_url,
                        extra=smtp_section(port) + '[delivery]\nmode = "queue"\n')
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    queued = digests.queue_digests(digests.DigestWork(config, store, lambda: datetime.now(UTC)), config.users)
    assert [r.status for r in queued.values()] == ["queued"] * users
    store.close()
    return path


def _workers(path: Path, count: int, *extra: str) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(recommender_command("--config", str(path), "worker", "--once", "--concurrency", "4",
                                                 *extra), cwd=path.parent, env=dict(os.environ),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)]


def test_racing_workers_send_each_digest_exactly_once(tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    path = _queue(tmp_path, database_url, smtp_server.port, 500)
    workers = _workers(path, 4)
    for worker in workers:
        assert worker.wait(timeout=240) == 0, worker.stderr.read().decode() if worker.stderr else ""
    counts = Counter(str(m["To"]) for m in smtp_server.box.messages)
    assert len(counts) == 500 and set(counts.values()) == {1}
    store = Store.open(load_config(path).database.url)
    assert Counter(i.status for i in Outbox(store).items()) == {"sent": 500}
    store.close()


class SlowHandlerServer(SmtpServer):
    """Each DATA takes a little while, so a worker can be killed with messages in flight."""

    def start(self) -> SlowHandlerServer:
        super().start()
        handler = self._controller.handler  # type: ignore[union-attr]
        original = handler.handle_DATA

        async def slow(server, session, envelope):  # noqa: ANN001 - aiosmtpd hook
            await asyncio.sleep(0.03)
            return await original(server, session, envelope)

        handler.handle_DATA = slow
        return self


def test_a_worker_killed_midway_loses_nothing(tmp_path: Path, database_url: str):
    server = SlowHandlerServer().start()
    try:
        path = _queue(tmp_path, database_url, server.port, 120)
        victim, survivor = _workers(path, 2, "--poll", "0.1")
        deadline = time.monotonic() + 60
        while len(server.box.messages) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert survivor.wait(timeout=240) == 0
        # Anything the victim still held (its process is gone) is sent by a fresh worker.
        for worker in _workers(path, 1):
            assert worker.wait(timeout=120) == 0
        by_user = Counter(str(m["To"]) for m in server.box.messages)
        assert len(by_user) == 120
        twice = [user for user, n in by_user.items() if n > 1]
        assert len(twice) <= 4  # only what was in flight in the killed worker
        for user in twice:
            ids = {str(m["Message-ID"]) for m in server.box.to(user)}
            assert len(ids) == 1  # the same message, folded by mail clients
        store = Store.open(load_config(path).database.url)
        assert Counter(i.status for i in Outbox(store).items()) == {"sent": 120}
        store.close()
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_queue_mode_daemon_job_only_enqueues(tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    from recommender.app.daemon import Daemon

    path = _queue(tmp_path, database_url, smtp_server.port, 1)
    config = load_config(path)
    store = Store.open(config.database.url)
    pipeline.ingest_files(store, SEEDS[1:2], batch_date=date(2025, 3, 21))
    daemon = Daemon(path)
    daemon.run_user("u000@example.org")
    daemon.stop()
    assert smtp_server.box.messages == []
    assert [i.status for i in Outbox(store).items()] == ["pending"]  # the daemon only said who is due
    assert ReaderSchedule(store).owed() == 1
    # A worker builds the due reader's digest (the new batch) and sends both.
    assert shards.work(config, store, threading.Event(), shards.WorkerOptions(2, once=True)) == 2
    assert ReaderSchedule(store).owed() == 0
    assert [i.status for i in Outbox(store).items()] == ["sent", "sent"]
    assert len(smtp_server.box.to("u000@example.org")) == 2


def test_a_worker_killed_mid_shard_loses_nothing_and_no_reader_gets_two_digests(tmp_path: Path, database_url: str):
    """The daemon marked 200 readers due; two workers build them in shards of 20; one is killed
    while building: its shard is claimed again, every reader gets exactly one digest."""
    server = SlowHandlerServer().start()
    try:
        listing = "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\nmax_items = 2\n' for i in range(200))
        path = write_config(tmp_path, users=listing, database_url=database_url,
                            extra=smtp_section(server.port) + '[delivery]\nmode = "queue"\n')
        config = load_config(path)
        store = Store.open(config.database.url)
        store.upgrade_schema()
        pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
        ids = store.sync_users(u.email for u in config.users)
        ReaderSchedule(store).run_now(sorted(ids.values()), datetime.now(UTC), {})
        victim, survivor = _workers(path, 2, "--poll", "0.1", "--shard", "20")
        deadline = time.monotonic() + 120
        while not Outbox(store).items() and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert survivor.wait(timeout=240) == 0, survivor.stderr.read().decode() if survivor.stderr else ""
        for worker in _workers(path, 1):  # whatever the victim held in flight
            assert worker.wait(timeout=120) == 0
        assert ReaderSchedule(store).owed() == 0
        items = Outbox(store).items()
        assert Counter(i.user_id for i in items) == Counter(ids.values())  # one digest each, none twice
        assert Counter(i.status for i in items) == {"sent": 200}
        by_user = Counter(str(m["To"]) for m in server.box.messages)
        assert len(by_user) == 200 and sum(by_user.values()) - 200 <= 4  # twice only if in flight
        store.close()
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_worker_and_the_scheduler_killed_mid_run_lose_nothing_and_send_each_digest_once(tmp_path: Path,
                                                                                           database_url: str):
    """The whole scale-out path on PostgreSQL: a scheduler, its standby and two workers (which
    read each shard's readers from the database); 150 readers due at once; a worker SIGKILLed
    mid-shard and the scheduler SIGKILLed mid-run. The standby takes over, the other worker
    (and one started after) build and send the rest: one digest each, every reader's mail
    arrives, twice only if it was in flight (the same Message-ID)."""
    readers = 150
    server = SlowHandlerServer().start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        due = datetime.now(UTC) + timedelta(seconds=20)  # after start-up, even on a loaded machine
        listing = "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\nmax_items = 2\ntimezone = "UTC"\n'
                          f'send_at = "{due:%H:%M:%S}"\n' for i in range(readers))
        path = write_config(tmp_path, users=listing, database_url=database_url,
                            extra=smtp_section(server.port) + '[delivery]\nmode = "queue"\n')
        for args in (("init",), ("ingest", str(SEEDS[0]))):
            subprocess.run(recommender_command("--config", str(path), *args), cwd=tmp_path, check=True,
                           capture_output=True)
        logs = {name: tmp_path / f"{name}.log" for name in ("scheduler", "standby")}

        def start(name: str, *args: str) -> subprocess.Popen[bytes]:
            out = logs[name].open("w") if name in logs else subprocess.DEVNULL
            process = subprocess.Popen(recommender_command("-v", "--config", str(path), *args), cwd=tmp_path,
                                       env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
            processes.append(process)
            return process

        scheduler = start("scheduler", "run")
        assert wait_until(lambda: "daemon started" in logs["scheduler"].read_text(), 60)
        standby = start("standby", "run", "--standby")
        victim, survivor = (start("worker", "worker", "--poll", "0.1", "--shard", "10", "--concurrency", "2")
                            for _ in range(2))
        store = Store.open(load_config(path).database.url)
        assert wait_until(lambda: len(Outbox(store).items()) >= 10, 120), logs["scheduler"].read_text()[-2000:]
        victim.send_signal(signal.SIGKILL)  # mid-shard: readers still owed, some built
        assert ReaderSchedule(store).owed() > 0
        scheduler.send_signal(signal.SIGKILL)  # mid-run: its readers enqueued, not all sent
        victim.wait(timeout=10)
        scheduler.wait(timeout=10)
        assert wait_until(lambda: "daemon started" in logs["standby"].read_text(), 60), logs["standby"].read_text()
        start("worker", "worker", "--poll", "0.1", "--shard", "10")  # a replacement for the killed worker
        assert wait_until(lambda: len({str(m["To"]) for m in server.box.messages}) == readers, 240)
        assert wait_until(lambda: ReaderSchedule(store).owed() == 0, 60)
        assert wait_until(lambda: {i.status for i in Outbox(store).items()} == {"sent"}, 60)
        items = Outbox(store).items()
        assert Counter(i.user_id for i in items) == Counter(store.user_ids())  # one digest each, none twice
        by_user = Counter(str(m["To"]) for m in server.box.messages)
        assert sum(by_user.values()) - readers <= 2  # the killed worker's messages in flight
        for user in (u for u, n in by_user.items() if n > 1):
            assert len({str(m["Message-ID"]) for m in server.box.to(user)}) == 1
        assert survivor.poll() is None and standby.poll() is None  # nothing else died
        assert "Traceback" not in logs["standby"].read_text()
        store.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        server.stop()
