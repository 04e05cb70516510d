"""Ranking quality on real CiteULike libraries (DEV users), through the product's own path:
papers and every DEV user's stars go into a real store, `pipeline.refresh` fits the models and
builds the profiles (what ingest does), and `pipeline.recommend` (what `recommender recommend`
and the digest use) ranks the new papers.

On the same sample of users (the first SAMPLE eligible users by id), in one run:
- ours alone: `community = "off"`, `personal = "on"` on the many-user store: each reader ranked
  from their own stars only, as a one-reader install ranks them (their own classifier);
- ours with everyone's stars (`community = "auto"`, every DEV user's stars in the install);
- the TF-IDF centroid and the per-user LinearSVC of arxiv-sanity-lite (TF-IDF with sublinear
  tf, English stop words, min_df 2, 1-2-grams, at most 50,000 features; C=0.01, balanced);
each with standard errors and seconds per user (ours alone: fitting the reader's classifier
and ranking; with everyone: ranking, the models being fit once for all).
Then ours with everyone and the centroid on all eligible users (the cost target), the same
sample reduced to 3 and to 10 random stars (seeded) for ours alone, centroid and SVM, and
small groups: the first 30 of the sample as six installs of five readers, with
`community = "auto"` (each reader alone) and `community = "on"` (the five readers' stars);
the same for one install of the first LAB readers; and one install of MID readers (the
sample and the DEV readers with stars that follow it by id) on the defaults. Last, every
install size on the defaults (one reader, 5, LAB, MID, everyone) against each reader alone.

    python bench/quality.py [--datasets a,t] [--sample N] [--sizes-only]
    python bench/quality.py --topics [--datasets a,t] [--sample N] [--first N]   # see bench/topic_split.py
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
from recommender.base.config import Config, DatabaseConfig, RankingConfig, UserConfig  # noqa: E402
from recommender.base.domain import ParsedBatch, ParsedPaper  # noqa: E402
from recommender.store import Store  # noqa: E402

SAMPLE = 150
FEW_STARS = (3, 10)
RANKING_RUNS = 3  # ranking every user is timed this many times; the median counts (this machine's timings swing)
TARGET_ALONE = 1.05  # ours alone against the SVM, both metrics, both datasets
TARGET_COMMUNITY = 1.10  # ours with everyone's stars against the SVM, both metrics; every install size at least ours alone
MAX_ALONE_SECONDS = 1.0  # per reader, fit and rank
MAX_COMMUNITY_COST = 1 / 20  # of the SVM's time per user
SMALL_GROUP, SMALL_GROUPS = 5, 6  # readers in each small-group install, and how many installs are measured
LAB = 100  # readers of one mid-size install (the first of the sample), under personal_max_users
MID = 1000  # readers of one larger install (the sample and the readers after it), over personal_max_users


def email(user: str) -> str:
    return f"user{user}@citeulike.dev"


def build_store(data: Dataset, folder: Path, stars: dict[str, list[str]], evaluated: list[str],
                ranking: RankingConfig) -> tuple[Store, Config, int]:
    """A store with the old papers (as imported library papers), the new papers as one digest
    batch in tie-key order, and ``stars`` (reader -> their starred old papers); the config
    lists the ``evaluated`` readers."""
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
    readers = sorted(stars)
    ids = store.sync_users(email(u) for u in readers)
    known = store.existing_ids([p for u in readers for p in stars[u]])
    store.star_many([(ids[email(u)], p) for u in readers for p in stars[u] if p in known], origin="import")
    config = Config(path=folder / "config.toml", database=DatabaseConfig(store.engine.url.render_as_string(False)),
                    ranking=ranking, users=tuple(UserConfig(email=email(u), max_items=50) for u in evaluated))
    assert result.batch_id is not None
    return store, config, result.batch_id


def rank_ours(data: Dataset, folder: Path, stars: dict[str, list[str]], groups: dict[str, list[str]],
              ranking: RankingConfig, label: str) -> tuple[dict[str, Metrics], float, float]:
    """Our metrics for each group of evaluated readers (group -> [(reader key, dataset user)]),
    the seconds per reader of ranking (median of RANKING_RUNS), and of building the models and
    profiles (once, as ingest does), per reader."""
    evaluated = list(dict.fromkeys(key for members in groups.values() for key in members))
    store, config, batch = build_store(data, folder, stars, evaluated, ranking)
    started = time.perf_counter()
    models = pipeline.refresh(store, config)
    fit = time.perf_counter() - started
    seconds = []
    for _ in range(RANKING_RUNS):
        started = time.perf_counter()
        results = pipeline.recommend(config, store, config.users, [batch], limit=50)
        seconds.append(time.perf_counter() - started)
    out = {}
    for name, members in groups.items():
        metrics = Metrics.empty()
        for key in members:
            metrics.add([r.paper.id for r in results[email(key)]], data.relevant(key.split("-")[0]))
        out[name] = metrics
    store.close()
    print(f"  [{data.name}] {label}: models and {len(evaluated)} profiles built in {fit:.1f}s "
          f"(community model: {'yes' if models.collab else 'no'}, readers' own "
          f"{'models' if models.collab and models.space else 'classifiers' if models.space else 'nothing'})", flush=True)
    return out, statistics.median(seconds) / len(evaluated), fit / len(evaluated)


def small_groups(data: Dataset, stars: dict[str, list[str]], members: list[str],
                 ranking: RankingConfig, size: int = SMALL_GROUP) -> tuple[Metrics, float]:
    """Ours with ``community = "on"`` in installs of ``size`` readers each (``members`` in
    order): their metrics and the seconds per reader of fitting and ranking."""
    metrics, seconds = Metrics.empty(), 0.0
    for start in range(0, len(members), size):
        group = members[start:start + size]
        with tempfile.TemporaryDirectory() as folder:
            out, ranked, fit = rank_ours(data, Path(folder), {u: stars[u] for u in group}, {"group": group},
                                         replace(ranking, community="on"), f"a group of {len(group)}, community on")
        metrics.extend(out["group"])
        seconds += (ranked + fit) * len(group)
    return metrics, seconds / len(members)


class Baselines:
    """The TF-IDF centroid and arxiv-sanity-lite's per-user SVM on the dataset's own TF-IDF."""

    def __init__(self, data: Dataset):
        self.data = data
        texts = [f"{t} {a}".strip() for t, a in zip(data.titles, data.abstracts, strict=True)]
        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, ngram_range=(1, 2),
                                     max_features=50_000)
        self.matrix = normalize(vectorizer.fit_transform(texts)).tocsr()
        self.index = {p: i for i, p in enumerate(data.ids)}
        self.candidates = data.new_ids
        self.cand_rows = self.matrix[[self.index[p] for p in self.candidates]]
        self.keys = np.array([tie_keys(self.candidates)[p] for p in self.candidates])

    def run(self, users: list[str], stars: dict[str, list[str]], scorer: str) -> tuple[Metrics, float]:
        metrics = Metrics.empty()
        started = time.perf_counter()
        for user in users:
            rows = [self.index[p] for p in stars[user]]
            if scorer == "centroid":
                scores = self.cand_rows @ np.asarray(self.matrix[rows].mean(axis=0)).ravel()
            else:
                labels = np.zeros(self.matrix.shape[0])
                labels[rows] = 1
                classifier = LinearSVC(C=0.01, class_weight="balanced", max_iter=10000, tol=1e-6)
                scores = classifier.fit(self.matrix, labels).decision_function(self.cand_rows)
            metrics.add(top_ids(scores, self.candidates, self.keys), self.data.relevant(user))
        return metrics, (time.perf_counter() - started) / len(users)


def groups_tables(name: str, data: Dataset, everyone: dict[str, list[str]], small: list[str], lab: list[str],
                  alone: dict[str, Metrics], alone_seconds: float, ranking: RankingConfig, baselines: Baselines) -> None:
    """The small groups' and the LAB install's tables: each reader alone, the group's stars, the SVM."""
    table(f"CiteULike-{name}, small groups: {SMALL_GROUPS} installs of {SMALL_GROUP} readers (the first "
          f"{len(small)} of the sample)", {
              'ours, community = "auto" (each reader alone)': (alone["small"], alone_seconds),
              'ours, community = "on" (the group\'s stars)': small_groups(data, everyone, small, ranking),
              "SVM (arxiv-sanity-lite)": baselines.run(small, everyone, "svm"),
          }, "SVM (arxiv-sanity-lite)")
    table(f"CiteULike-{name}, one install of {len(lab)} readers (the first of the sample)", {
              'ours, community = "auto" (each reader alone)': (alone["lab"], alone_seconds),
              'ours, community = "on" (the install\'s stars)': small_groups(data, everyone, lab, ranking, len(lab)),
              "SVM (arxiv-sanity-lite)": baselines.run(lab, everyone, "svm"),
          }, "SVM (arxiv-sanity-lite)")


def paired(title: str, ours: Metrics, alone: Metrics) -> None:
    """The mean per-reader difference and its standard error (the same readers: the paired
    error is far below either figure's own)."""
    parts = []
    for metric, a, b in (("R@50", ours.r50, alone.r50), ("nDCG@20", ours.ndcg, alone.ndcg)):
        difference = np.asarray(a) - np.asarray(b)
        parts.append(f"{metric} {difference.mean():+.4f} ± {difference.std() / np.sqrt(len(difference)):.4f}")
        parts[-1] += f" ({int((difference > 0).sum())} readers up, {int((difference < 0).sum())} down)"
    print(f"  {title}: " + "; ".join(parts))


def reduced(data: Dataset, users: list[str], count: int) -> dict[str, list[str]]:
    """Each user's old papers cut to ``count`` random ones (seeded by the count)."""
    rng = np.random.default_rng(count)
    return {u: sorted(rng.choice(data.old_of(u), size=min(count, len(data.old_of(u))), replace=False).tolist())
            for u in users}


def table(title: str, rows: dict[str, tuple[Metrics, float]], reference: str) -> dict[str, dict[str, float]]:
    print(f"\n  {title}; ratios against the {reference}")
    print(f"  {'ranker':44s} {'users':>5s} {'R@50':>6s} {'±se':>6s} {'nDCG@20':>8s} {'±se':>6s} {'ratios':>14s} {'s/user':>8s}")
    summaries = {label: metrics.summary() for label, (metrics, _) in rows.items()}
    ref = summaries[reference]
    for label, (_, seconds) in rows.items():
        s = summaries[label]
        ratio = f"{s['R@50'] / ref['R@50']:.3f}x/{s['nDCG@20'] / ref['nDCG@20']:.3f}x"
        print(f"  {label:44s} {s['users']:5d} {s['R@50']:6.3f} {s['se_R@50']:6.3f} {s['nDCG@20']:8.3f} "
              f"{s['se_nDCG@20']:6.3f} {ratio:>14s} {seconds:8.4f}")
    return summaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="a,t")
    parser.add_argument("--sample", type=int, default=SAMPLE, help="users of the comparison with the SVM")
    parser.add_argument("--sizes-only", action="store_true",
                        help="only the comparison with the SVM and the install sizes (a larger --sample in less time)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="override a [ranking] setting (for tuning on DEV users)")
    parser.add_argument("--topics", action="store_true",
                        help="measure topics instead (bench/topic_split.py: its protocol)")
    parser.add_argument("--first", type=int, default=0, help="with --topics: the first eligible user measured")
    parser.add_argument("--topic-affinity", default=None,
                        help="with --topics: pipeline.topics.AFFINITY_WEIGHT values to compare (comma-separated)")
    parser.add_argument("--topic-floor", default=None,
                        help="with --topics: pipeline.topics.FLOOR_SHARE values to compare (comma-separated)")
    args = parser.parse_args()
    if args.topics:
        import topic_split

        return topic_split.main(args.datasets.split(","), args.sample, args.first, args.topic_affinity,
                                args.topic_floor)
    defaults = RankingConfig()
    overrides = {k: type(getattr(defaults, k))(v) for k, v in (item.split("=", 1) for item in args.settings)}
    ranking = replace(defaults, **overrides)
    if overrides:
        print(f"ranking settings overridden: {overrides}")
    verdicts = []
    for name in args.datasets.split(","):
        data = load(name)
        sample = data.eligible[:args.sample]
        print(f"\nCiteULike-{name}: {len(data.ids)} papers, {len(data.new)} new, {len(data.eligible)} eligible DEV users,"
              f" {len(data.libraries)} DEV readers with stars; comparison on the first {len(sample)} eligible", flush=True)
        everyone = {u: data.old_of(u) for u in data.libraries}
        few = {count: reduced(data, sample, count) for count in FEW_STARS}
        with tempfile.TemporaryDirectory() as folder:
            crowd, crowd_time, crowd_fit = rank_ours(
                data, Path(folder), everyone, {"all": data.eligible, "sample": sample},
                replace(ranking, community="auto"), "with everyone's stars")
        alone_stars = dict(everyone)
        small, lab = sample[:SMALL_GROUP * SMALL_GROUPS], sample[:LAB]
        groups = {"full": sample}
        if not args.sizes_only:
            for count, cut in few.items():
                alone_stars.update({f"{u}-{count}": cut[u] for u in sample})
            groups |= {"small": small, "lab": lab, **{str(count): [f"{u}-{count}" for u in sample] for count in FEW_STARS}}
        with tempfile.TemporaryDirectory() as folder:
            alone, alone_time, alone_fit = rank_ours(data, Path(folder), alone_stars, groups,
                                                     replace(ranking, community="off", personal="on"), "alone")
        baselines = Baselines(data)
        centroid_all = baselines.run(data.eligible, everyone, "centroid")
        svm = baselines.run(sample, everyone, "svm")
        alone_seconds = alone_time + alone_fit
        main_rows = {
            "ours alone (community off, own classifier)": (alone["full"], alone_seconds),
            "ours with everyone's stars": (crowd["sample"], crowd_time),
            "TF-IDF centroid": (baselines.run(sample, everyone, "centroid")[0], centroid_all[1]),
            "SVM (arxiv-sanity-lite)": svm,
        }
        main = table(f"CiteULike-{name}, the first {len(sample)} eligible DEV users", main_rows, "SVM (arxiv-sanity-lite)")
        table(f"CiteULike-{name}, all {len(data.eligible)} eligible DEV users (no SVM: see the sample)",
              {"ours with everyone's stars": (crowd["all"], crowd_time), "TF-IDF centroid": centroid_all},
              "TF-IDF centroid")
        for count in () if args.sizes_only else FEW_STARS:
            table(f"CiteULike-{name}, the same users reduced to {count} random stars (seed {count})", {
                "ours alone": (alone[str(count)], alone_seconds),
                "TF-IDF centroid": baselines.run(sample, few[count], "centroid"),
                "SVM (arxiv-sanity-lite)": baselines.run(sample, few[count], "svm"),
            }, "SVM (arxiv-sanity-lite)")
        if not args.sizes_only:
            groups_tables(name, data, everyone, small, lab, alone, alone_seconds, ranking, baselines)
        readers = sorted(data.libraries, key=int)
        mid_install = list(dict.fromkeys(sample + [u for u in readers if int(u) > int(sample[-1])]))[:MID]
        # A sample larger than the install: the install is its first MID readers, and its
        # comparisons are on them.
        mid_sample = sample[:len(mid_install)]
        with tempfile.TemporaryDirectory() as folder:
            mid, mid_time, mid_fit = rank_ours(data, Path(folder), {u: everyone[u] for u in mid_install},
                                               {"sample": mid_sample}, ranking, f"one install of {len(mid_install)} readers")
        # Installs of up to personal_max_users readers (the 5 and LAB above) rank each reader alone.
        sizes = table(f"CiteULike-{name}, install sizes on the defaults (up to {ranking.personal_max_users} readers: "
                      "each alone), the sample", {
            "1 reader (alone)": (alone["full"], alone_seconds),
            f"{len(mid_install)} readers": (mid["sample"], mid_time + mid_fit),
            f"everyone ({len(data.libraries)} readers)": (crowd["sample"], crowd_time),
            "SVM (arxiv-sanity-lite)": svm,
        }, "SVM (arxiv-sanity-lite)")
        if len(mid_sample) < len(sample):
            mid_sizes = table(f"CiteULike-{name}, the install of {len(mid_install)} readers, on them", {
                "1 reader (alone)": (alone["full"].head(len(mid_sample)), alone_seconds),
                f"{len(mid_install)} readers": (mid["sample"], mid_time + mid_fit),
                f"everyone ({len(data.libraries)} readers)": (crowd["sample"].head(len(mid_sample)), crowd_time),
                "SVM (arxiv-sanity-lite)": (svm[0].head(len(mid_sample)), svm[1]),
            }, "SVM (arxiv-sanity-lite)")
        else:
            mid_sizes = sizes
        paired(f"CiteULike-{name}, {len(mid_install)} readers against each reader alone", mid["sample"],
               alone["full"].head(len(mid_sample)))
        paired(f"CiteULike-{name}, everyone against each reader alone", crowd["sample"], alone["full"])
        svm_s, alone_s, crowd_s = main["SVM (arxiv-sanity-lite)"], main["ours alone (community off, own classifier)"], \
            main["ours with everyone's stars"]
        mid_s, mid_alone_s, mid_svm_s = (mid_sizes[k] for k in (f"{len(mid_install)} readers", "1 reader (alone)",
                                                                "SVM (arxiv-sanity-lite)"))
        alone_ok = (alone_s["R@50"] >= TARGET_ALONE * svm_s["R@50"] and alone_s["nDCG@20"] >= TARGET_ALONE * svm_s["nDCG@20"]
                    and alone_seconds <= MAX_ALONE_SECONDS)
        # The targets: everyone >= 1.10x the SVM, and no install size below each reader alone
        # (the install of MID compared with the same readers alone).
        crowd_ok = all(crowd_s[m] >= TARGET_COMMUNITY * svm_s[m] and crowd_s[m] >= alone_s[m]
                       and mid_s[m] >= mid_alone_s[m] for m in ("R@50", "nDCG@20")) \
            and crowd_time <= MAX_COMMUNITY_COST * svm[1]
        print(f"\n  target alone >= {TARGET_ALONE}x the SVM on both, <= {MAX_ALONE_SECONDS} s a reader: "
              f"{alone_s['R@50'] / svm_s['R@50']:.3f}x / {alone_s['nDCG@20'] / svm_s['nDCG@20']:.3f}x, "
              f"{alone_seconds:.2f} s: {'PASS' if alone_ok else 'MISS'}")
        print(f"  target with everyone >= {TARGET_COMMUNITY}x the SVM and >= ours alone on both, an install of "
              f"{len(mid_install)} >= its readers alone, <= 1/20 of the SVM's time: "
              f"everyone {crowd_s['R@50'] / svm_s['R@50']:.3f}x / {crowd_s['nDCG@20'] / svm_s['nDCG@20']:.3f}x, "
              f"{crowd_s['R@50'] - alone_s['R@50']:+.4f} / {crowd_s['nDCG@20'] - alone_s['nDCG@20']:+.4f} against alone; "
              f"{len(mid_install)} readers {mid_s['R@50'] / mid_svm_s['R@50']:.3f}x / "
              f"{mid_s['nDCG@20'] / mid_svm_s['nDCG@20']:.3f}x, {mid_s['R@50'] - mid_alone_s['R@50']:+.4f} / "
              f"{mid_s['nDCG@20'] - mid_alone_s['nDCG@20']:+.4f} against alone; "
              f"1/{svm[1] / crowd_time:.0f} (models fit once: {crowd_fit * len(data.eligible):.0f} s in all): "
              f"{'PASS' if crowd_ok else 'MISS'}", flush=True)
        verdicts += [alone_ok, crowd_ok]
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
