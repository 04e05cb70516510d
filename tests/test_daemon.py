"""`recommender run` as a real subprocess: a user due in a few seconds gets a digest from a
real SMTP server; SIGHUP picks up a new user; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import SEEDS, recommender_command, smtp_section, write_config
from smtp_server import SmtpServer


def _user(email: str, due: datetime) -> str:
    return f'[[users]]\nemail = "{email}"\ntimezone = "UTC"\nsend_at = "{due:%H:%M:%S}"\nmax_items = 3\n'


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_daemon_sends_on_time_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path, smtp_server: SmtpServer):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(SEEDS[0], inbox / "page.txt")
    due = datetime.now(UTC) + timedelta(seconds=6)
    sources = '[[sources]]\nname = "inbox"\nkind = "trending_page"\npath = "inbox/*.txt"\n'
    path = write_config(tmp_path, users=_user("ada@example.org", due), extra=smtp_section(smtp_server.port) + sources)
    subprocess.run(recommender_command("--config", str(path), "init"), cwd=tmp_path, check=True, capture_output=True)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(recommender_command("-v", "--config", str(path), "run"), cwd=tmp_path,
                              env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _wait(lambda: len(smtp_server.box.messages) == 1, 40), (tmp_path / "daemon.log").read_text()
        message = smtp_server.box.messages[0]
        assert message["To"] == "ada@example.org" and message["Subject"].startswith("3 trending papers")
        # A new user added to the config is picked up on SIGHUP.
        later = datetime.now(UTC) + timedelta(seconds=5)
        path.write_text(path.read_text() + _user("bob@example.org", later))
        daemon.send_signal(signal.SIGHUP)
        assert _wait(lambda: len(smtp_server.box.to("bob@example.org")) == 1, 40), (tmp_path / "daemon.log").read_text()
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
    output = (tmp_path / "daemon.log").read_text()
    assert "INFO recommender.app.daemon: ada@example.org: sent 3 paper(s)" in output
    assert "config reloaded" in output and "received SIGTERM, stopping" in output and "daemon stopped" in output
    assert "Traceback" not in output
    assert len(smtp_server.box.to("ada@example.org")) == 1  # once, not again after the reload


def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path: Path):
    import httpx

    from smtp_server import free_port

    port = free_port()
    path = write_config(tmp_path)
    subprocess.run(recommender_command("--config", str(path), "init"), cwd=tmp_path, check=True, capture_output=True)
    server = subprocess.Popen(recommender_command("--config", str(path), "serve", "--port", str(port)), cwd=tmp_path,
                              env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert _wait(healthy, 30)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
    output = server.stdout.read().decode() if server.stdout else ""
    assert "Traceback" not in output and "Shutting down" in output


def test_serve_and_run_refuse_the_example_secret(tmp_path: Path):
    path = write_config(tmp_path)
    subprocess.run(recommender_command("--config", str(path), "init"), cwd=tmp_path, check=True, capture_output=True)
    env = dict(os.environ, RECOMMENDER_SECRET="change-me-to-a-long-random-string")
    for command in ("serve", "run"):
        result = subprocess.run(recommender_command("--config", str(path), command), cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and "example value" in result.stderr and "Traceback" not in result.stderr
