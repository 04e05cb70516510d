"""Ingest: a 100,000-paper JSONL file into SQLite with dedupe and the TF-IDF refit, as the
whole `recommender ingest` command. Baseline in the same run: the same papers inserted one
row at a time with plain sqlite3 (no dedupe, no model), the floor of a naive importer."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from commands import recommender, timed, write_config  # noqa: E402

PAPERS = 100_000
TARGET = 5_000


def main() -> int:
    print(f"Ingest: {PAPERS} synthetic papers (JSONL) into SQLite, dedupe and TF-IDF refit")
    data = synthetic.corpus(PAPERS, seed=3)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        source = folder / "papers.jsonl"
        synthetic.write_jsonl(data, source, range(PAPERS))
        config = write_config(folder, ["bench@example.org"])
        timed(recommender("--config", str(config), "init"), folder)
        seconds, peak = timed(recommender("--config", str(config), "ingest", str(source)), folder)
        again, _ = timed(recommender("--config", str(config), "ingest", str(source)), folder)
        rate = PAPERS / seconds
        baseline_db = sqlite3.connect(folder / "naive.sqlite")
        baseline_db.execute("CREATE TABLE papers (id TEXT PRIMARY KEY, title TEXT, abstract TEXT)")
        started = time.perf_counter()
        for i in range(PAPERS):
            baseline_db.execute("INSERT INTO papers VALUES (?, ?, ?)", (data.ids[i], data.titles[i], data.abstracts[i]))
            if i % 1000 == 999:
                baseline_db.commit()
        baseline_db.commit()
        naive = time.perf_counter() - started
    print(f"  ours: {seconds:.1f} s end to end = {rate:,.0f} papers/s (peak RSS {peak:,.0f} MB); "
          f"re-ingest of the same file {again:.1f} s")
    print(f"  baseline, row-at-a-time sqlite3 insert without dedupe or model: {naive:.1f} s = "
          f"{PAPERS / naive:,.0f} papers/s; ours is {naive / seconds:.2f}x its speed")
    ok = rate >= TARGET
    print(f"  target >= {TARGET:,} papers/s: {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
