"""bioRxiv fetch: 7 days of one subject, about 1,000 papers in pages of 100, from recorded API
answers served on 127.0.0.1 by another process (so the server's time is not ours), fetched,
parsed and stored in SQLite by the Fetcher as the daemon runs it. "Our own time" is this
process's CPU time (user + system). Baseline in the same run: the same pages fetched with
plain httpx and json.loads, nothing parsed into papers or stored (the floor of any client)."""

from __future__ import annotations

import json
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from recommender.base.config import load_config  # noqa: E402
from recommender.pipeline.fetching import Fetcher  # noqa: E402
from recommender.sources import biorxiv  # noqa: E402
from recommender.store import Store  # noqa: E402

PAPERS = 1_000
PAGE = 100
TARGET_SECONDS = 10.0
RECORDED = ROOT / "tests" / "fixtures" / "sources"


def _collection() -> list[dict]:
    """1,000 papers shaped as the recorded answers' (bioRxiv and medRxiv items, their text)."""
    items = json.loads((RECORDED / "biorxiv-details-2026-07-15.json").read_text())["collection"][:2]
    items += json.loads((RECORDED / "medrxiv-details-2026-09-15-excerpt.json").read_text())["collection"]
    return [dict(items[i % len(items)], doi=f"10.64898/2026.07.{10 + i % 7}.{800000 + i}", version="1",
                 title=f"{items[i % len(items)]['title']} ({i})", category="neuroscience") for i in range(PAPERS)]


def _serve(port_queue: multiprocessing.Queue) -> None:
    pages: dict[int, bytes] = {}
    papers = _collection()
    for cursor in range(0, PAPERS, PAGE):
        chunk = papers[cursor:cursor + PAGE]
        pages[cursor] = json.dumps({"messages": [{"status": "ok", "category": "neuroscience", "cursor": cursor,
                                                  "count": len(chunk), "total": str(PAPERS)}],
                                    "collection": chunk}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            cursor = int(self.path.split("?")[0].rstrip("/").rsplit("/", 1)[1])
            body = pages.get(cursor, b'{"messages":[{"status":"no posts found"}],"collection":[]}')
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def main() -> int:
    print(f"bioRxiv fetch: 7 days of one subject, {PAPERS} papers in pages of {PAGE}, recorded answers on 127.0.0.1")
    ports: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    try:
        with tempfile.TemporaryDirectory() as folder_name:
            folder = Path(folder_name)
            config_path = folder / "config.toml"
            config_path.write_text(f'[database]\nurl = "sqlite:///{folder / "bench.sqlite"}"\n'
                                   f'[[users]]\nemail = "bench@example.org"\n'
                                   f'[[sources]]\nname = "neuro"\nkind = "biorxiv"\nurl = "{base}"\n'
                                   f'categories = ["neuroscience"]\ndays = 7\n')
            config = load_config(config_path)
            store = Store.open(config.database.url)
            store.upgrade_schema()
            fetcher = Fetcher(config, store, clock=lambda: datetime(2026, 7, 16, 8, 0, tzinfo=UTC))
            cpu, wall = time.process_time(), time.perf_counter()
            outcome = fetcher.fetch(fetcher.sources())[0]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            stored = len(store.papers())
            store.close()
        urls = biorxiv.first_urls(base, "biorxiv", datetime(2026, 7, 16).date(), 7, ["neuroscience"])
        floor_cpu, floor_wall = time.process_time(), time.perf_counter()
        with httpx.Client() as client:
            url: str | None = urls[0]
            pages = 0
            while url:
                body = client.get(url).content
                json.loads(body)
                pages += 1
                url = biorxiv.next_url(url, body, pages)
        floor_cpu, floor_wall = time.process_time() - floor_cpu, time.perf_counter() - floor_wall
    finally:
        server.terminate()
    print(f"  ours: {outcome.line()}; {stored} papers stored; {cpu:.2f} s of our CPU time, {wall:.2f} s wall")
    print(f"  baseline, the same {pages} pages with plain httpx + json.loads (nothing parsed or stored): "
          f"{floor_cpu:.2f} s CPU, {floor_wall:.2f} s wall; ours costs {max(cpu - floor_cpu, 0):.2f} s CPU more")
    ok = outcome.status == "new" and stored == PAPERS and cpu < TARGET_SECONDS
    print(f"  target: {PAPERS} papers stored in < {TARGET_SECONDS:.0f} s of our own time: {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
