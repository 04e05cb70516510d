"""Digest run: 10,000 users and a 500-paper batch: rank, render and deliver every digest to a
local aiosmtpd sink, as the whole `recommender digest send` command. Baseline in the same run:
the same number of plain messages sent with Python's smtplib, one connection per message
(what a naive mailer does). Memory is sampled at 2,000 and 10,000 users to show it is flat."""

from __future__ import annotations

import asyncio
import collections
import smtplib
import socket
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from commands import recommender, timed, write_config  # noqa: E402

TARGET = 200


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.kept: collections.deque[bytes] = collections.deque(maxlen=1000)  # the last messages, as sent

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001 - aiosmtpd hook
        self.count += 1
        self.kept.append(envelope.original_content or envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(users: int, folder: Path, port: int, sink: Sink) -> tuple[float, float]:
    data = synthetic.corpus(3_000, seed=5)
    old, new = folder / "old.jsonl", folder / "new.jsonl"
    synthetic.write_jsonl(data, old, range(2_500))
    synthetic.write_jsonl(data, new, range(2_500, 3_000))
    emails = [f"u{i}@example.org" for i in range(users)]
    extra = (f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nmax_connections = 8\n'
             '[ranking]\ncollaborative_min_users = 1000000\n')
    config = write_config(folder, emails, extra)
    stars = folder / "stars.csv"
    libraries = synthetic.user_libraries(data, users, __import__("numpy").arange(2_500))
    stars.write_text("user,paper_id\n" + "".join(f"{emails[u]},{data.ids[p]}\n"
                                                 for u, lib in enumerate(libraries) for p in lib[:10]))
    for args in (("init",), ("ingest", str(old)), ("stars", "import", str(stars)), ("ingest", str(new))):
        timed(recommender("--config", str(config), *args), folder)
    before = sink.count
    seconds, peak = timed(recommender("--config", str(config), "digest", "send"), folder)
    assert sink.count - before == users, (sink.count - before, users)
    return seconds, peak, list(sink.kept)  # (the outbox stores no message: it is rendered when sent)


def replay_rate(messages: list[bytes], port: int, connections: int = 8) -> float:
    """The sink's own ceiling for these messages: already built, sent by a bare aiosmtplib
    client over ``connections`` connections, nothing else running (no database, no rendering)."""
    import aiosmtplib

    async def one_connection(queue: list[bytes]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while queue:
            await client.sendmail("digest@example.org", ["reader@example.org"], queue.pop())
        await client.quit()

    async def replay() -> None:
        queue = list(messages)
        await asyncio.gather(*(one_connection(queue) for _ in range(connections)))

    started = time.perf_counter()
    asyncio.run(replay())
    return len(messages) / (time.perf_counter() - started)


def main() -> int:
    print("Digest run: rank, render and deliver to a local SMTP sink, 500-paper batch")
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        results = {}
        for users in (2_000, 10_000):
            with tempfile.TemporaryDirectory() as folder:
                seconds, peak, messages = run(users, Path(folder), port, sink)
            results[users] = seconds, peak
            print(f"  {users:6d} users: {seconds:6.1f} s = {users / seconds:6.0f} emails/s, peak RSS {peak:6.0f} MB",
                  flush=True)
        started = time.perf_counter()
        for i in range(500):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "a@example.org", f"u{i}@example.org", "x"
            message.set_content("plain")
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.send_message(message)
        naive_rate = 500 / (time.perf_counter() - started)
        ceiling = replay_rate(messages, port)
    finally:
        controller.stop()
    rate = 10_000 / results[10_000][0]
    growth = results[10_000][1] / results[2_000][1]
    print(f"  baseline, smtplib with one connection per message (no ranking, no rendering): {naive_rate:.0f} emails/s;"
          f" ours {rate / naive_rate:.2f}x")
    size = sum(len(m) for m in messages) / len(messages) / 1024
    print(f"  ceiling of the sink itself: the same {len(messages)} stored digests ({size:.0f} kB each) replayed by a bare "
          f"aiosmtplib client over 8 connections: {ceiling:.0f} emails/s; ours is {rate / ceiling:.0%} of it")
    ok = rate >= TARGET and growth < 1.5
    print(f"  target >= {TARGET} emails/s with memory flat in users: {rate:.0f} emails/s, peak memory x{growth:.2f} "
          f"from 2k to 10k users: {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
