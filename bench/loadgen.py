"""A bounded HTTP load generator (loopback only): GETs each URL path from a file once, over a
fixed number of concurrent connections, and prints a JSON summary (count, seconds, rate,
p50/p99 latency, status codes). Stops after the list or after --seconds, whichever is first."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import httpx


async def run(base: str, paths: list[str], concurrency: int, limit_seconds: float) -> dict[str, object]:
    assert base.startswith(("http://127.", "http://localhost")), "loopback only"
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for path in paths:
        queue.put_nowait(path)
    deadline = time.monotonic() + limit_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def worker() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                path = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1  # type: ignore[index]
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"count": len(ordered), "seconds": seconds, "rate": len(ordered) / seconds,
            "p50_ms": 1000 * ordered[len(ordered) // 2], "p99_ms": 1000 * ordered[int(len(ordered) * 0.99)],
            "statuses": dict(statuses)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("paths_file")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    paths = open(args.paths_file, encoding="utf-8").read().split()
    print(json.dumps(asyncio.run(run(args.base, paths, args.concurrency, args.seconds))))


if __name__ == "__main__":
    main()
