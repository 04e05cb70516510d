"""Recommendation latency: `recommender recommend` for one user over a 5,000-paper batch with
a warm cache (models fitted at ingest), timed as the whole command and as the ranking call
alone. The command is timed twice: answered by a running `recommender warm` (models, database
and compiled kernels kept loaded: the warm cache the target means) and as a cold start (a new
Python process importing numpy, scipy and SQLAlchemy and mapping the models). Baselines in the
same run: the per-user LinearSVC of arxiv-sanity-lite on the same corpus and user (fit +
score), and a bare `python -c "import numpy, scipy.sparse, sqlalchemy"` (this machine's floor
for any cold start that ranks with them)."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from commands import environment, recommender, timed, write_config  # noqa: E402

from recommender import pipeline  # noqa: E402
from recommender.base.config import load_config  # noqa: E402
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
        os.environ["XDG_RUNTIME_DIR"] = str(folder / "run")  # where `recommender warm` listens
        timed(command, folder)  # the operating system's file cache warmed
        cold = [timed(command, folder)[0] for _ in range(5)]
        imports = [timed([sys.executable, "-c", "import numpy, scipy.sparse, sqlalchemy"], folder)[0]
                   for _ in range(5)]
        warm, runs = start_warm(config_path, folder), []
        try:
            reference = subprocess.run(command, cwd=folder, env=environment(), capture_output=True, check=True).stdout
            runs = [timed(command, folder)[0] for _ in range(5)]
            answered = (folder / "warm.log").read_text().count("warm: answered")
        finally:
            warm.send_signal(signal.SIGTERM)
            warm.wait(timeout=30)
        assert answered == 6, "the warm process did not answer every run"
        assert reference == subprocess.run(command, cwd=folder, env=environment(), capture_output=True,
                                           check=True).stdout, "answers differ with and without the warm process"
        config = load_config(config_path)
        store = Store.open(config.database.url)
        models = pipeline.load_models(store, config)
        candidates = store.batch_papers(store.latest_run_batch_ids())
        calls = []
        for _ in range(20):
            started = time.perf_counter()
            pipeline.rank_users(pipeline.Ranking(config, store, models, datetime.now(UTC)), config.users, candidates,
                                20, persist=False)  # as `recommend` calls it: it reads profiles, never stores them
            calls.append(time.perf_counter() - started)
        labels = np.zeros(len(models.text.paper_ids))
        labels[[models.text.index[data.ids[p]] for p in library]] = 1
        started = time.perf_counter()
        svm = LinearSVC(C=0.01, class_weight="balanced", max_iter=10000, tol=1e-6).fit(models.text.matrix, labels)
        svm.decision_function(models.text.rows([p.id for p in candidates]))
        svm_seconds = time.perf_counter() - started
        store.close()
    command_ms, call_ms = 1000 * statistics.median(runs), 1000 * statistics.median(calls)
    cold_ms, imports_ms = 1000 * statistics.median(cold), 1000 * statistics.median(imports)
    print(f"  whole command, answered by `recommender warm`: median {command_ms:.0f} ms of 5 runs "
          f"(the command's own start-up included; same output as a cold start, checked)")
    print(f"  whole command, cold start: median {cold_ms:.0f} ms of 5 runs; baseline, a bare Python importing "
          f"numpy, scipy.sparse and SQLAlchemy: {imports_ms:.0f} ms (the warm path is "
          f"{cold_ms / command_ms:.1f}x faster than cold, {imports_ms / command_ms:.1f}x faster than those imports)")
    print(f"  ranking call: median {call_ms:.1f} ms of 20 calls")
    print(f"  baseline, per-user LinearSVC fit + score: {svm_seconds * 1000:.0f} ms; our ranking call is "
          f"{svm_seconds * 1000 / call_ms:.0f}x faster")
    ok_command, ok_call = command_ms < 300, call_ms < 20
    print(f"  target command (warm cache) < 300 ms: {'PASS' if ok_command else 'MISS'}; ranking call < 20 ms: "
          f"{'PASS' if ok_call else 'MISS'}")
    return 0 if ok_command and ok_call else 1


def start_warm(config_path: Path, folder: Path) -> subprocess.Popen[bytes]:
    """`recommender warm` for this config, returned once it listens."""
    with (folder / "warm.log").open("w") as log:
        warm = subprocess.Popen(recommender("-v", "--config", str(config_path), "warm"), cwd=folder,
                                env=environment(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "warm: ready\n" not in (folder / "warm.log").read_text():
        if warm.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("recommender warm did not start:\n" + (folder / "warm.log").read_text())
        time.sleep(0.05)
    return warm


if __name__ == "__main__":
    raise SystemExit(main())
