"""Recommendation latency: `recommender recommend` for one user over a 5,000-paper batch with
a warm cache (models fitted at ingest), timed as the whole command and as the ranking call
alone. Baseline in the same run: the per-user LinearSVC of arxiv-sanity-lite on the same
corpus and user (fit + score)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from commands import recommender, timed, write_config  # noqa: E402

from recommender import pipeline  # noqa: E402
from recommender.config import load_config  # noqa: E402
from recommender.store import Store  # noqa: E402

OLD, NEW = 10_000, 5_000


def main() -> int:
    print(f"Recommendation latency: one user, {NEW}-paper batch, {OLD + NEW}-paper corpus, warm cache")
    data = synthetic.corpus(OLD + NEW, seed=13)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        old, new = folder / "old.jsonl", folder / "new.jsonl"
        synthetic.write_jsonl(data, old, range(OLD))
        synthetic.write_jsonl(data, new, range(OLD, OLD + NEW))
        config_path = write_config(folder, ["ada@example.org"])
        stars = folder / "stars.csv"
        library = synthetic.user_libraries(data, 1, np.arange(OLD))[0]
        stars.write_text("user,paper_id\n" + "".join(f"ada@example.org,{data.ids[p]}\n" for p in library))
        for args in (("init",), ("ingest", str(old)), ("stars", "import", str(stars)), ("ingest", str(new))):
            timed(recommender("--config", str(config_path), *args), folder)
        command = recommender("--config", str(config_path), "recommend", "--limit", "20", "--json")
        timed(command, folder)  # warm
        runs = [timed(command, folder)[0] for _ in range(5)]
        config = load_config(config_path)
        store = Store.open(config.database.url)
        models = pipeline.load_models(store, config)
        candidates = store.papers(store.batch_entries(store.latest_run_batch_ids()))
        calls = []
        for _ in range(20):
            started = time.perf_counter()
            pipeline.rank_users(config, store, models, config.users, candidates, 20, datetime.now(UTC))
            calls.append(time.perf_counter() - started)
        labels = np.zeros(len(models.text.paper_ids))
        labels[[models.text.index[data.ids[p]] for p in library]] = 1
        started = time.perf_counter()
        svm = LinearSVC(C=0.01, class_weight="balanced", max_iter=10000, tol=1e-6).fit(models.text.matrix, labels)
        svm.decision_function(models.text.rows([p.id for p in candidates]))
        svm_seconds = time.perf_counter() - started
        store.close()
    command_ms, call_ms = 1000 * statistics.median(runs), 1000 * statistics.median(calls)
    print(f"  whole command: median {command_ms:.0f} ms of 5 runs (Python start-up and imports included)")
    print(f"  ranking call: median {call_ms:.1f} ms of 20 calls")
    print(f"  baseline, per-user LinearSVC fit + score: {svm_seconds * 1000:.0f} ms; our ranking call is "
          f"{svm_seconds * 1000 / call_ms:.0f}x faster")
    ok_command, ok_call = command_ms < 300, call_ms < 20
    print(f"  target command < 300 ms: {'PASS' if ok_command else 'MISS'}; ranking call < 20 ms: "
          f"{'PASS' if ok_call else 'MISS'}")
    return 0 if ok_command and ok_call else 1


if __name__ == "__main__":
    raise SystemExit(main())
