"""A second `recommender run --standby` on one PostgreSQL database waits and takes over when
the first is killed; on SQLite a second daemon is refused with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import recommender_command, write_config


def _wait_for(path: Path, text: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in path.read_text():
            return True
        time.sleep(0.1)
    return text in path.read_text()


def _daemon(path: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(recommender_command("-v", "--config", str(path), "run", *extra), cwd=path.parent,
                                env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_second_daemon_on_postgresql_is_a_standby_that_takes_over(tmp_path: Path, database_url: str):
    path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\n', database_url=database_url,
                        extra='[delivery]\nmode = "queue"\n')
    subprocess.run(recommender_command("--config", str(path), "init"), cwd=tmp_path, check=True, capture_output=True)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _daemon(path, first_log)
    second = None
    try:
        assert _wait_for(first_log, "daemon started", 30), first_log.read_text()
        second = _daemon(path, second_log, "--standby")
        assert _wait_for(second_log, "standby", 30), second_log.read_text()
        assert "daemon started" not in second_log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = time.monotonic()
        assert _wait_for(second_log, "daemon started", 60), second_log.read_text()
        assert time.monotonic() - killed < 60
        assert "taking over the schedule" in second_log.read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_a_second_daemon_on_sqlite_is_refused(tmp_path: Path):
    path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\n')
    subprocess.run(recommender_command("--config", str(path), "init"), cwd=tmp_path, check=True, capture_output=True)
    first = _daemon(path, tmp_path / "first.log")
    try:
        assert _wait_for(tmp_path / "first.log", "daemon started", 30)
        second = subprocess.run(recommender_command("--config", str(path), "run"), cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert second.stderr.strip().splitlines()[-1].startswith("Error: ")
        assert "already running" in second.stderr and "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
