"""`digest send` and the daemon SIGKILLed with email and webhook deliveries in flight: the
next run makes every owed delivery, on each channel; only what was in flight at a kill (a
message, or one part of a post) arrives twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_crashes import _alive, _children, _wait_for
from test_faults import _check_integrity, _setup

from recommender.store.channel_posts import ChannelPosts
from recommender.store.outbox import Outbox

from conftest import recommender_command, smtp_section, write_config
from smtp_server import SmtpServer
from webhook_server import Answer, WebhookServer

READERS = 6


def _config(tmp_path: Path, smtp_port: int, send_at: str = "") -> Path:
    when = f'send_at = "{send_at}"\ntimezone = "UTC"\n' if send_at else ""
    users = "".join(f'[[users]]\nemail = "u{i}@example.org"\nmax_items = 25\nchannels = ["email", "webhook"]\n'
                    f'webhook = "w{i}"\n{when}' for i in range(READERS))
    hooks = "".join(f'[[webhooks]]\nname = "w{i}"\nkind = "discord"\nurl_env = "HOOK_{i}"\n' for i in range(READERS))
    return write_config(tmp_path, users=users, extra=smtp_section(smtp_port, max_connections=1) + hooks)


def _environment(webhook: WebhookServer) -> dict[str, str]:
    return {**os.environ, **{f"HOOK_{i}": webhook.url(f"/w{i}") for i in range(READERS)}}


def _check_every_post_whole(webhook: WebhookServer, store_path: Path, kills: int) -> None:
    from recommender.store import Store

    store = Store.open(f"sqlite:///{store_path}")
    posts = ChannelPosts(store).items()
    assert Counter(p.status for p in posts) == {"sent": READERS}
    by_path: dict[str, list[str]] = {}
    for _, path, body in webhook.hook.requests:
        by_path.setdefault(path, []).append(body["content"])
    assert sorted(by_path) == [f"/w{i}" for i in range(READERS)]
    repeats = 0
    for post in posts:
        contents = by_path[f"/{post.webhook}"]
        assert len(set(contents)) == post.parts and post.parts_sent == post.parts  # every part arrived
        repeats += len(contents) - post.parts
    assert repeats <= kills  # one part in flight at each kill
    assert Counter(i.status for i in Outbox(store).items()) == {"sent": READERS}
    store.close()


def test_digest_send_killed_with_emails_and_posts_in_flight(tmp_path: Path):
    smtp, webhook = SmtpServer().start(), WebhookServer().start()
    smtp.box.data_seconds = 0.2
    webhook.hook.ok = Answer(204, delay=0.2)
    try:
        _setup(tmp_path, smtp.port, 1)  # the database and the seed papers
        path = _config(tmp_path, smtp.port)
        command = recommender_command("--config", str(path), "digest", "send")
        env = _environment(webhook)
        # First killed while emails go out, then while posts go out.
        for reached in (lambda: len(smtp.box.messages) >= 2, lambda: len(webhook.hook.requests) >= 3):
            process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            _wait_for(lambda p=process, r=reached: r() or p.poll() is not None, seconds=120)
            helpers = _children(process.pid)
            assert process.poll() is None, "the run ended before the kill"
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            _wait_for(lambda h=helpers: not any(_alive(p) for p in h), seconds=2)
            _check_integrity(tmp_path / "db" / "recommender.sqlite")
        final = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert final.returncode == 0, final.stderr
        received = Counter(str(m["To"]) for m in smtp.box.messages)
        assert set(received) == {f"u{i}@example.org" for i in range(READERS)}
        for user, copies in received.items():
            if copies > 1:
                assert len({str(m["Message-ID"]) for m in smtp.box.to(user)}) == 1, user
        assert sum(c - 1 for c in received.values()) <= 2
        _check_every_post_whole(webhook, tmp_path / "db" / "recommender.sqlite", kills=2)
    finally:
        smtp.stop()
        webhook.stop()


def test_the_daemons_run_killed_with_posts_in_flight_is_started_again_and_posts_the_rest(tmp_path: Path):
    smtp, webhook = SmtpServer().start(), WebhookServer().start()
    webhook.hook.ok = Answer(204, delay=0.3)
    try:
        _setup(tmp_path, smtp.port, 1)
        due = datetime.now(UTC) + timedelta(seconds=6)
        path = _config(tmp_path, smtp.port, f"{due:%H:%M:%S}")
        log_path = tmp_path / "daemon.log"
        with log_path.open("w") as log:
            daemon = subprocess.Popen(recommender_command("-v", "--config", str(path), "run"), cwd=tmp_path,
                                      env=_environment(webhook), stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_for(lambda: len(webhook.hook.requests) >= 3, seconds=90)
                runs = re.findall(r"digest run of \d+ user\(s\) in process (\d+)", log_path.read_text())
                assert len(runs) == 1, log_path.read_text()[-3000:]
                os.kill(int(runs[0]), signal.SIGKILL)
                # The restarted run's line per reader, as `digest send` prints it.
                _wait_for(lambda: len(re.findall(r"^INFO recommender\.app\.daemon: [^\s:]+@[^\s:]+: ",
                                                 log_path.read_text(), re.M)) == READERS, seconds=120)
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(timeout=60) == 0
            finally:
                if daemon.poll() is None:
                    daemon.kill()
        output = log_path.read_text()
        assert "the digest run's process ended early" in output and "Traceback" not in output
        _check_every_post_whole(webhook, tmp_path / "db" / "recommender.sqlite", kills=1)
    finally:
        smtp.stop()
        webhook.stop()
