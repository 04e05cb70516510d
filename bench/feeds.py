"""Feeds: 1,000 readers polling their private Atom feeds every minute, served by `recommender
serve` on SQLite (rate limit off: the readers poll from their own addresses). A minute of
their polls at their own rate (1,000 in 60 s, paced, each at its own moment: a reader's feed
reader does not wait for the others): first every feed whole (200, rendered), then a minute of
every feed again with its ETag (304), as feed readers poll. Targets: p99 < 50 ms for both.
Baseline in the same run and way: GET / (the health line) at the same rate for 10 s."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from commands import SECRET, recommender, serving, timed, write_config  # noqa: E402

from recommender.base.config import load_config  # noqa: E402
from recommender.store import Store  # noqa: E402

READERS = 1_000
POLL_SECONDS = 60.0  # each reader polls once a minute
os.environ.setdefault("RECOMMENDER_SECRET", SECRET)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def paced(base: str, requests: list[tuple[str, dict[str, str]]], seconds: float) -> dict[str, object]:
    """Each request sent at its own moment (evenly over ``seconds``), whatever the others do."""
    latencies: list[float] = []
    statuses: Counter[object] = Counter()
    etags: dict[str, str] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        started = time.perf_counter()

        async def one(index: int, path: str, headers: dict[str, str]) -> None:
            await asyncio.sleep(max(0.0, started + index * seconds / len(requests) - time.perf_counter()))
            began = time.perf_counter()
            try:
                response = await client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                return
            latencies.append(time.perf_counter() - began)
            statuses[response.status_code] += 1
            etags[path] = response.headers.get("etag", "")

        await asyncio.gather(*(one(i, p, h) for i, (p, h) in enumerate(requests)))
        took = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"count": len(ordered), "seconds": took, "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[int(len(ordered) * 0.99)], "statuses": dict(statuses), "etags": etags}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): what a request costs the
    server whatever else the machine runs."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    print(f"Feeds: {READERS} readers polling their Atom feeds, each once in {POLL_SECONDS:.0f} s, SQLite")
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        papers = folder / "papers.jsonl"
        synthetic.write_jsonl(synthetic.corpus(1_000, seed=11), papers, range(1_000))
        port = free_port()
        config_path = write_config(folder, [f"u{i}@example.org" for i in range(READERS)],
                                   f'[feedback]\nbase_url = "http://127.0.0.1:{port}"\nrate_limit_per_minute = 0\nmax_connections_per_client = 0\n'
                                   '[ranking]\ncollaborative_min_users = 1000000\n')
        text = config_path.read_text().replace('max_items = 20\n', 'max_items = 20\nchannels = ["feed"]\n')
        config_path.write_text(text)
        timed(recommender("--config", str(config_path), "init"), folder)
        timed(recommender("--config", str(config_path), "ingest", str(papers)), folder)
        config = load_config(config_path)
        store = Store.open(config.database.url)
        from recommender.pipeline import channels, digests

        clock = lambda: datetime.now(UTC)  # noqa: E731
        digests.queue_digests(digests.DigestWork(config, store, clock), config.users)
        signer = digests.signer_for(config, clock)
        paths = [channels.feed_url(config, store, signer, u).removeprefix(f"http://127.0.0.1:{port}")
                 for u in config.users]
        store.close()
        server = serving(config_path, port, folder)
        try:
            base = f"http://127.0.0.1:{port}"
            cpu = [cpu_seconds(server.pid)]
            health = asyncio.run(paced(base, [("/", {})] * (READERS // 6), POLL_SECONDS / 6))
            cpu.append(cpu_seconds(server.pid))
            whole = asyncio.run(paced(base, [(p, {}) for p in paths], POLL_SECONDS))
            cpu.append(cpu_seconds(server.pid))
            etags = whole["etags"]
            assert isinstance(etags, dict)
            again = asyncio.run(paced(base, [(p, {"If-None-Match": etags[p]}) for p in paths], POLL_SECONDS))
            cpu.append(cpu_seconds(server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    phases = (("baseline GET /", health), ("whole feeds (200)", whole), ("polls with ETag (304)", again))
    for index, (name, figures) in enumerate(phases):
        per_request = 1000 * (cpu[index + 1] - cpu[index]) / figures["count"]  # type: ignore[operator]
        print(f"  {name}: {figures['count']} in {figures['seconds']:.1f} s, p50 {figures['p50_ms']:.1f} ms, "
              f"p99 {figures['p99_ms']:.1f} ms, server CPU {per_request:.1f} ms a request, "
              f"statuses {figures['statuses']}")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok = (whole["p99_ms"] < 50 and again["p99_ms"] < 50  # type: ignore[operator]
          and whole["statuses"] == {200: READERS} and again["statuses"] == {304: READERS})
    print(f"  target p99 < 50 ms for whole feeds and conditional polls, every feed 200 then 304: "
          f"{'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
