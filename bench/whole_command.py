"""The whole command after a fresh ingest: `recommender recommend --all-users --batch latest
--limit 20 --json` for 2,000 users over 5,000 new papers (a 30,000-paper corpus), against the
per-user LinearSVC of arxiv-sanity-lite on the same data (timed on a sample, extrapolated).
Ingest fits the models and builds the profiles eagerly, so the command only reads and ranks.
The command is timed three times after the one ingest (the median counts), its output written
to a file as `> file` would (a pipe read by this process competed for the two cores)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic  # noqa: E402
from commands import recommender, timed, write_config  # noqa: E402

from recommender.base.config import RankingConfig  # noqa: E402
from recommender.model import tfidf  # noqa: E402

CORPUS, NEW, USERS, TARGET = 30_000, 5_000, 2_000, 500
RUNS = 3


def main() -> int:
    print(f"Whole command: recommend --all-users for {USERS} users x {NEW} new papers ({CORPUS}-paper corpus)")
    data = synthetic.corpus(CORPUS, seed=21)
    old_range = np.arange(CORPUS - NEW)
    libraries = synthetic.user_libraries(data, USERS, old_range)
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        old, new = folder / "old.jsonl", folder / "new.jsonl"
        synthetic.write_jsonl(data, old, range(CORPUS - NEW))
        synthetic.write_jsonl(data, new, range(CORPUS - NEW, CORPUS))
        emails = [f"u{i}@example.org" for i in range(USERS)]
        config = write_config(folder, emails)
        stars = folder / "stars.csv"
        stars.write_text("user,paper_id\n" + "".join(f"{emails[u]},{data.ids[p]}\n"
                                                     for u, lib in enumerate(libraries) for p in lib))
        timed(recommender("--config", str(config), "init"), folder)
        timed(recommender("--config", str(config), "ingest", str(old)), folder)
        timed(recommender("--config", str(config), "stars", "import", str(stars)), folder)
        ingest_seconds, _ = timed(recommender("--config", str(config), "ingest", str(new)), folder)
        runs, outputs = [], []
        for run in range(RUNS):  # the median of a few runs: this machine's timings swing by a third
            written = folder / f"recommendations-{run}.jsonl"  # to a file, as `> file` would: not read meanwhile
            with written.open("wb") as output:
                started = time.perf_counter()
                subprocess.run(recommender("--config", str(config), "recommend", "--all-users", "--batch", "latest",
                                           "--limit", "20", "--json"), cwd=folder, stdout=output, stderr=subprocess.DEVNULL,
                               env=__import__("commands").environment(), check=True)
                runs.append(time.perf_counter() - started)
            outputs.append(written.read_bytes())
        seconds = statistics.median(runs)
        lines = outputs[0].count(b"\n")
        assert all(o == outputs[0] for o in outputs), "the runs gave different answers"
    model = tfidf.fit(data.ids, data.titles, data.abstracts, RankingConfig(), 1)
    new_rows = model.matrix[CORPUS - NEW:]
    started = time.perf_counter()
    for library in libraries[:5]:
        labels = np.zeros(CORPUS)
        labels[library] = 1
        LinearSVC(C=0.01, class_weight="balanced", max_iter=10000, tol=1e-6).fit(model.matrix, labels) \
            .decision_function(new_rows)
    svm_total = (time.perf_counter() - started) / 5 * USERS
    ratio = svm_total / seconds
    print(f"  ingest of the new batch (refit and profiles, eager): {ingest_seconds:.1f} s")
    print(f"  command: {seconds:.1f} s (median of {', '.join(f'{r:.1f}' for r in runs)}) for {lines} recommendation "
          f"lines ({seconds / USERS * 1000:.1f} ms/user)")
    print(f"  baseline, per-user LinearSVC: {svm_total:.0f} s extrapolated from 5 users; ours is {ratio:.0f}x faster")
    ok = ratio >= TARGET and lines == USERS * 20
    print(f"  target >= {TARGET}x the SVM: {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
