"""`digest send` killed the way processes die: the main process alone (the OOM killer, `kill -9
PID`), its delivery child alone, or the whole group, at seeded moments while a slow relay
receives. Every owed digest arrives after the next run; only messages in flight at the kill
arrive twice, with the same Message-ID; no process of the command outlives it."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from test_faults import _check_integrity, _setup

from recommender.store.outbox import Outbox

from conftest import recommender_command, smtp_section, write_config
from smtp_server import SmtpServer

USERS = 40
CONNECTIONS = 2


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, seconds: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("victim", ["main", "child", "group"])
def test_killed_process_by_process_every_digest_arrives_once_or_in_flight_twice(tmp_path: Path, victim: str):
    server = SmtpServer().start()
    server.box.data_seconds = 0.25  # seconds of sending left at each kill, for a helper to outlive it in
    try:
        path, _, store = _setup(tmp_path, server.port, USERS, max_connections=CONNECTIONS)
        command = recommender_command("--config", str(path), "digest", "send")
        rng = random.Random(f"20261205-{victim}")
        for _ in range(2):  # two kills at seeded moments, then a clean run
            already = len(server.box.messages)
            process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
            moment = already + rng.randint(2, 6)
            _wait_for(lambda m=moment, p=process: len(server.box.messages) >= m or p.poll() is not None)
            helpers = _children(process.pid)
            if process.poll() is None:
                if victim == "main":
                    os.kill(process.pid, signal.SIGKILL)
                elif victim == "child":
                    for helper in helpers:
                        os.kill(helper, signal.SIGKILL)
                else:
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=120)
            # No helper goes on sending after the command is gone (the kernel kills it at once).
            _wait_for(lambda h=helpers: not any(_alive(p) for p in h), seconds=1.5)
            # A message whose data the server had whole before the kill is still accepted, after
            # its data_seconds: that one was in flight, not sent on by a survivor.
            time.sleep(2 * server.box.data_seconds)
            settled = len(server.box.messages)
            time.sleep(0.3)
            assert len(server.box.messages) == settled
            _check_integrity(tmp_path / "db" / "recommender.sqlite")
        final = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        assert "nothing new" not in final.stdout or Counter(str(m["To"]) for m in server.box.messages).keys() == {
            f"u{i:03d}@example.org" for i in range(USERS)}
        received = Counter(str(m["To"]) for m in server.box.messages)
        assert set(received) == {f"u{i:03d}@example.org" for i in range(USERS)}
        for user, copies in received.items():
            if copies > 1:
                assert len({str(m["Message-ID"]) for m in server.box.to(user)}) == 1, user
        assert sum(c - 1 for c in received.values()) <= 2 * CONNECTIONS  # the in-flight ones of each kill
        assert Counter(i.status for i in Outbox(store).items()) == {"sent": USERS}
    finally:
        server.stop()


def test_a_run_beside_a_sending_one_reports_digests_in_flight_elsewhere(tmp_path: Path):
    server = SmtpServer().start()
    server.box.data_seconds = 0.6  # 3.6 s of sending: time for the second command to start on a busy machine
    try:
        path, _, _ = _setup(tmp_path, server.port, 6, max_connections=1)
        command = recommender_command("--config", str(path), "digest", "send")
        first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _wait_for(lambda: len(server.box.messages) >= 1)
        beside = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        first.communicate(timeout=120)
        lines = beside.stdout.splitlines()
        assert len(lines) == 6 and any(line.endswith(": in flight elsewhere") for line in lines), beside.stdout
        # (what the first run had not claimed yet, this one sends itself)
        assert all(re.search(r": (in flight elsewhere|nothing new|sent \d+ paper\(s\))$", line) for line in lines), \
            beside.stdout
        assert Counter(str(m["To"]) for m in server.box.messages) == {f"u{i:03d}@example.org": 1 for i in range(6)}
    finally:
        server.stop()


def test_the_daemons_digest_run_is_split_between_processes_and_started_again_when_killed(tmp_path: Path):
    """`recommender run` with many users due at once: one run for all of them, in a process of
    its own split between two worker processes; that process SIGKILLed alone mid-delivery is
    started again by the daemon, and every user gets their digest (twice only if in flight)."""
    from datetime import UTC, datetime, timedelta

    users = 210  # more than pipeline.PARALLEL_USERS: worth two worker processes
    server = SmtpServer().start()
    server.box.data_seconds = 0.01
    try:
        path, _, store = _setup(tmp_path, server.port, 1, max_connections=CONNECTIONS)
        due = datetime.now(UTC) + timedelta(seconds=6)
        write_config(tmp_path, users="".join(f'[[users]]\nemail = "u{i:03d}@example.org"\ntimezone = "UTC"\n'
                                             f'max_items = 2\nsend_at = "{due:%H:%M:%S}"\n' for i in range(users)),
                     extra=smtp_section(server.port, max_connections=CONNECTIONS))
        log_path = tmp_path / "daemon.log"
        with log_path.open("w") as log:
            daemon = subprocess.Popen(recommender_command("-v", "--config", str(path), "run"), cwd=tmp_path,
                                      stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_for(lambda: len(server.box.messages) >= 20, seconds=90)
                runs = re.findall(r"digest run of 210 user\(s\) in process (\d+)", log_path.read_text())
                assert len(runs) == 1, log_path.read_text()[-3000:]
                run = int(runs[0])
                helpers = _children(run)
                os.kill(run, signal.SIGKILL)
                _wait_for(lambda: not any(_alive(p) for p in helpers), seconds=5)  # its workers die with it
                _wait_for(lambda: len({str(m["To"]) for m in server.box.messages}) == users, seconds=120)
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(timeout=60) == 0
            finally:
                if daemon.poll() is None:
                    daemon.kill()
        output = log_path.read_text()
        assert "queueing the digests of 210 users in 2 processes" in output
        assert "the digest run's process ended early" in output and "starting it again" in output
        assert len(re.findall(r"digest run of 210 user\(s\) in process \d+", output)) == 2
        assert "Traceback" not in output
        received = Counter(str(m["To"]) for m in server.box.messages)
        for user, copies in received.items():
            if copies > 1:
                assert len({str(m["Message-ID"]) for m in server.box.to(user)}) == 1, user
        assert sum(c - 1 for c in received.values()) <= CONNECTIONS  # the ones in flight at the kill
        assert Counter(i.status for i in Outbox(store).items()) == {"sent": users}
        # A line per user, as `digest send` prints it (sent, or nothing new for those the killed run sent).
        assert len(re.findall(r"^INFO recommender.app.daemon: u\d{3}@example\.org: (sent \d+ paper\(s\)|nothing new)$",
                              output, re.M)) == users
    finally:
        server.stop()
