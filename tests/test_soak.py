"""Soak (make soak, a few minutes, loopback only): the daemon sends digests while the endpoint
takes a steady stream of clicks and the CLI stars papers, all on one SQLite file. Afterwards
every click and star is recorded, every digest delivered once, no "database is locked"
reached a user, and memory stayed flat."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest

from recommender.base.config import load_config
from recommender.store import Store
from recommender.store.feedback import FeedbackLog

from conftest import SEEDS, recommender_command, smtp_section, write_config
from smtp_server import SmtpServer, free_port

USERS = 60
DURATION = 150  # seconds of load


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.soak
def test_soak_daemon_clicks_and_stars_on_one_sqlite_file(tmp_path: Path, smtp_server: SmtpServer):
    port = free_port()
    start = datetime.now(UTC) + timedelta(seconds=20)
    users = "".join(f'[[users]]\nemail = "u{i:03d}@example.org"\ntimezone = "UTC"\nmax_items = 8\n'
                    f'send_at = "{start + timedelta(seconds=int(i * (DURATION - 40) / USERS)):%H:%M:%S}"\n'
                    for i in range(USERS))
    extra = (smtp_section(smtp_server.port) + f'[feedback]\nbase_url = "http://127.0.0.1:{port}"\n'
             'rate_limit_per_minute = 0\n')
    path = write_config(tmp_path, users=users, extra=extra)
    env = dict(os.environ)
    cli = lambda *args: subprocess.run(recommender_command("--config", str(path), *args), cwd=tmp_path, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    assert cli("init").returncode == 0
    assert cli("ingest", *map(str, SEEDS[:3])).returncode == 0
    store = Store.open(load_config(path).database.url)
    paper_ids = [p.id for p in store.papers()]
    daemon = subprocess.Popen(recommender_command("--config", str(path), "run"), cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = subprocess.Popen(recommender_command("--config", str(path), "serve", "--port", str(port)), cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rng = random.Random(7)
    clicked: set[str] = set()
    click_codes: Counter[int] = Counter()
    star_failures: list[str] = []
    starred: set[tuple[str, str]] = set()
    memory: dict[int, list[int]] = {daemon.pid: [], server.pid: []}
    try:
        time.sleep(5)
        deadline = time.monotonic() + DURATION
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while time.monotonic() < deadline:
                for raw in list(smtp_server.box.raw):  # the digests as sent
                    text = message_from_bytes(raw, policy=policy.default).get_body(("plain",)).get_content()
                    for link in re.findall(rf"http://127\.0\.0\.1:{port}(/feedback/more/[\w.-]+)", text)[:3]:
                        if link not in clicked:
                            clicked.add(link)
                            click_codes[client.get(link).status_code] += 1
                user, paper = f"u{rng.randrange(USERS):03d}@example.org", rng.choice(paper_ids)
                result = cli("star", "--user", user, paper)
                if result.returncode != 0 or "locked" in result.stderr:
                    star_failures.append(result.stderr.strip())
                else:
                    starred.add((user, paper))
                for pid in memory:
                    memory[pid].append(_rss_kb(pid))
                time.sleep(0.5)
        wait_until = time.monotonic() + 60
        while len(smtp_server.box.messages) < USERS and time.monotonic() < wait_until:
            time.sleep(1)
    finally:
        for process in (daemon, server):
            process.send_signal(signal.SIGTERM)
        daemon_exit, server_exit = daemon.wait(timeout=30), server.wait(timeout=30)
    daemon_log = daemon.stderr.read().decode() if daemon.stderr else ""
    server_log = server.stderr.read().decode() if server.stderr else ""
    assert daemon_exit == 0 and server_exit == 0
    assert "database is locked" not in daemon_log + server_log and "Traceback" not in daemon_log + server_log
    assert star_failures == []
    assert Counter(str(m["To"]) for m in smtp_server.box.messages) == {f"u{i:03d}@example.org": 1 for i in range(USERS)}
    assert click_codes == {200: len(clicked)} and len(clicked) >= 100
    assert FeedbackLog(store).count() == len(clicked)
    ids = {email: store.user_id(email) for email in {u for u, _ in starred}}
    stars = {(email, p) for email, uid in ids.items() for p in store.starred_ids(uid)}
    assert starred <= stars
    for samples in memory.values():
        settled = samples[len(samples) // 4:]
        assert max(settled) - min(settled) < 80_000, samples  # kB: flat, no leak under load
