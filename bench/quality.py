"""Ranking quality on real CiteULike libraries (DEV users), through the product's own path:
papers and every DEV user's stars go into a real store, and `pipeline.recommend` (what
`recommender recommend` and the digest use) ranks the new papers for each eligible user.

In the same run, on the same users: the TF-IDF centroid, max-similarity kNN and random
(all users), and the per-user LinearSVC(C=0.01, class_weight="balanced") of
arxiv-sanity-lite on a fixed sample (the first SVM_SAMPLE eligible users by id). Our ranking
of all users is timed RANKING_RUNS times and the median counts (one slow moment of this shared
machine had doubled it).

    python bench/quality.py [--datasets a,t] [--users N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))
from citeulike import Dataset, Metrics, load, tie_keys, top_ids  # noqa: E402

from recommender import pipeline  # noqa: E402
from recommender.config import Config, DatabaseConfig, RankingConfig, UserConfig  # noqa: E402
from recommender.domain import ParsedBatch, ParsedPaper  # noqa: E402
from recommender.store import Store  # noqa: E402

SVM_SAMPLE = 100
RANKING_RUNS = 3  # our ranking of every user is timed this many times; the median counts
REFERENCE = {"a": {"svm": (0.406, 0.230), "centroid": (0.383, 0.220)},
             "t": {"svm": (0.421, 0.219), "centroid": (0.400, 0.210)}}


def email(user: str) -> str:
    return f"user{user}@citeulike.dev"


def build_store(data: Dataset, folder: Path, ranking: RankingConfig) -> tuple[Store, Config, int]:
    """A store with the old papers (as imported library papers), the new papers as one digest
    batch in tie-key order, and every DEV user's old papers as their stars."""
    store = Store.open(f"sqlite:///{folder / f'citeulike-{data.name}.sqlite'}")
    store.upgrade_schema()
    old = [ParsedPaper(title=t, abstract=a, source_id=i) for i, t, a in zip(data.ids, data.titles, data.abstracts, strict=True)
           if i not in data.new and (t or a)]
    store.add_papers(old)
    keys = tie_keys(data.new_ids)
    new = [ParsedPaper(title=t or "", abstract=a or " ", source_id=i)
           for i, t, a in zip(data.ids, data.titles, data.abstracts, strict=True) if i in data.new]
    new.sort(key=lambda p: keys[p.source_id])
    result = store.ingest_batch(ParsedBatch("jsonl", tuple(new)), "citeulike-new", f"citeulike-{data.name}", "bench")
    users = sorted(data.libraries, key=int)
    ids = store.sync_users(email(u) for u in users)
    known = store.existing_ids([p for u in users for p in data.old_of(u)])
    store.star_many([(ids[email(u)], p) for u in users for p in data.old_of(u) if p in known], origin="import")
    config = Config(path=folder / "config.toml", database=DatabaseConfig(store.engine.url.render_as_string(False)),
                    ranking=ranking, users=tuple(UserConfig(email=email(u), max_items=50) for u in data.eligible))
    assert result.batch_id is not None
    return store, config, result.batch_id


def rank_ours(data: Dataset, users: list[str], folder: Path, ranking: RankingConfig) -> tuple[Metrics, float, float]:
    started = time.perf_counter()
    store, config, batch = build_store(data, folder, ranking)
    setup = time.perf_counter() - started
    fit_started = time.perf_counter()
    pipeline.refresh(store, config)  # what ingest does eagerly: fit models, build profiles
    fit = time.perf_counter() - fit_started
    wanted = {email(u) for u in users}
    metrics = Metrics.empty()
    chosen = [u for u in config.users if u.email in wanted]
    seconds = []
    for _ in range(RANKING_RUNS):  # the median of a few: this machine's timings swing by half within minutes
        started = time.perf_counter()
        results = pipeline.recommend(config, store, chosen, [batch], limit=50)
        seconds.append(time.perf_counter() - started)
    per_user = statistics.median(seconds) / len(users)
    for user in users:
        metrics.add([r.paper.id for r in results[email(user)]], data.relevant(user))
    store.close()
    print(f"  [{data.name}] ours: store built in {setup:.1f}s, models fit and profiles built in {fit:.1f}s (once, as ingest does)", flush=True)
    return metrics, per_user, fit


def baselines(data: Dataset, users: list[str], svm_users: list[str]) -> dict[str, tuple[Metrics, float]]:
    texts = [f"{t} {a}".strip() for t, a in zip(data.titles, data.abstracts, strict=True)]
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, ngram_range=(1, 2))
    matrix = normalize(vectorizer.fit_transform(texts)).tocsr()
    index = {p: i for i, p in enumerate(data.ids)}
    candidates = data.new_ids
    cand_rows = matrix[[index[p] for p in candidates]]
    keys = np.array([tie_keys(candidates)[p] for p in candidates])
    out: dict[str, tuple[Metrics, float]] = {}

    def run(name: str, who: list[str], scorer) -> None:
        metrics = Metrics.empty()
        started = time.perf_counter()
        for user in who:
            metrics.add(top_ids(scorer(user), candidates, keys), data.relevant(user))
        out[name] = (metrics, (time.perf_counter() - started) / len(who))

    def old_rows(user: str):
        return matrix[[index[p] for p in data.old_of(user)]]

    run("TF-IDF centroid", users, lambda u: cand_rows @ np.asarray(old_rows(u).mean(axis=0)).ravel())
    run("max-similarity kNN", users, lambda u: (cand_rows @ old_rows(u).T).max(axis=1).toarray().ravel())
    rng = np.random.default_rng(1)
    run("random", users, lambda u: rng.random(len(candidates)))

    def svm(user: str) -> np.ndarray:
        labels = np.zeros(matrix.shape[0])
        labels[[index[p] for p in data.old_of(user)]] = 1
        classifier = LinearSVC(C=0.01, class_weight="balanced", max_iter=10000, tol=1e-6)
        classifier.fit(matrix, labels)
        return classifier.decision_function(cand_rows)

    run(f"LinearSVC (arxiv-sanity), {len(svm_users)} users", svm_users, svm)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="a,t")
    parser.add_argument("--users", type=int, default=0, help="only the first N eligible users (0: all)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [ranking] setting (for tuning on DEV users)")
    args = parser.parse_args()
    defaults = RankingConfig()
    overrides = {k: type(getattr(defaults, k))(v) for k, v in (item.split("=", 1) for item in args.settings)}
    ranking = replace(defaults, **overrides)
    if overrides:
        print(f"ranking settings overridden: {overrides}")
    verdicts = []
    for name in args.datasets.split(","):
        data = load(name)
        users = data.eligible[: args.users] if args.users else data.eligible
        svm_users = data.eligible[:SVM_SAMPLE]
        print(f"\nCiteULike-{name}: {len(data.ids)} papers, {len(data.new)} new, {len(users)} eligible DEV users"
              f" (SVM on the first {len(svm_users)} by id)", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            ours, ours_time, fit = rank_ours(data, users, Path(folder), ranking)
        rows = {"ours (recommender)": (ours, ours_time)}
        rows.update(baselines(data, users, svm_users))
        # Ours on the SVM's sample too, so the cost and quality comparison is on the same users.
        sample = Metrics.empty()
        sample.r20, sample.r50, sample.ndcg = ([getattr(ours, f)[users.index(u)] for u in svm_users if u in users]
                                               for f in ("r20", "r50", "ndcg"))
        rows["ours, on the SVM sample"] = (sample, ours_time)
        print(f"{'ranker':42s} {'users':>6s} {'R@20':>7s} {'R@50':>7s} {'±se':>6s} {'nDCG@20':>8s} {'±se':>6s} {'s/user':>9s}")
        for label, (metrics, seconds) in rows.items():
            s = metrics.summary()
            print(f"{label:42s} {s['users']:6d} {s['R@20']:7.3f} {s['R@50']:7.3f} {s['se_R@50']:6.3f} "
                  f"{s['nDCG@20']:8.3f} {s['se_nDCG@20']:6.3f} {seconds:9.4f}")
        svm_label = next(k for k in rows if k.startswith("LinearSVC"))
        svm_summary, svm_time = rows[svm_label][0].summary(), rows[svm_label][1]
        ours_summary = ours.summary()
        sample_summary = sample.summary()
        ref_r50, ref_ndcg = REFERENCE[name]["svm"]
        cost = ours_time / svm_time
        print(f"  ours vs SVM on its sample: R@50 {sample_summary['R@50'] / svm_summary['R@50']:.2f}x, "
              f"nDCG@20 {sample_summary['nDCG@20'] / svm_summary['nDCG@20']:.2f}x; all users vs the SVM's reference "
              f"(R@50 {ref_r50}, nDCG@20 {ref_ndcg}): {ours_summary['R@50'] / ref_r50:.2f}x, "
              f"{ours_summary['nDCG@20'] / ref_ndcg:.2f}x")
        print(f"  ranking cost per user: ours {ours_time * 1000:.1f} ms vs SVM {svm_time * 1000:.0f} ms = 1/{1 / cost:.0f}"
              f" (model fit once for all users: {fit:.1f}s)")
        ok = (ours_summary["R@50"] >= ref_r50 and ours_summary["nDCG@20"] >= ref_ndcg
              and sample_summary["R@50"] >= svm_summary["R@50"] and sample_summary["nDCG@20"] >= svm_summary["nDCG@20"]
              and cost <= 1 / 20)
        verdicts.append((name, ok))
        print(f"  target (>= SVM on R@50 and nDCG@20, <= 1/20 of its time): {'PASS' if ok else 'MISS'}", flush=True)
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
