"""Topics on real CiteULike libraries (DEV users), through the product: the same reader ranked
with one profile and with topics, in one store (`community = "off"`, `personal = "on"`: each
reader from their own stars, as a one-reader install ranks them).

Protocol (the data has no tags, so topics come from clustering the training stars):
1. For each of SAMPLE eligible DEV users (from the FIRST-th on, by id), the product's `profile
   topics --suggest --max 3` (pipeline.suggest_topics) splits their old (training) papers;
   readers whose stars do not split into two groups or more are left out. Each reader's stars
   are then starred again into their topics (t0..tk), and `pipeline.refresh` builds and caches
   every reader's profile (what ingest does).
2. Each held-out (new) relevant paper belongs to the topic whose stars' mean dense vector
   (the product's own vectors) is nearest; the reader's smallest topic is the one with the
   fewest training stars.
3. Single: the same reader configured without topics (its stars' topics are then ignored),
   `recommend --limit 50`. Topics: the reader with `[[users.topics]]` t0..tk, no max_items (the
   50 split by the product's floors and merit), `recommend --limit 50`.
4. Measured, from the 50 picks of each digest: overall R@50 (the picks as a set), R@20 and
   nDCG@20 over the picks in the order of the score each pick shows (the digest's sections have
   no order between them; the single profile's list is in that order already; the
   round-robin reading, each section's first pick then each one's second..., is printed too);
   R@50 of the smallest topic's held-out papers (readers with one at least) among all 50 picks;
   arxiv-sanity-lite's SVM on the same readers; and the cost per reader with three topics
   against the same reader with one profile: seconds of the first `recommend` of a reader whose
   profile no ingest built (its classifier fit, then ranking), and of ranking once ingest
   cached it.

    python bench/quality.py --topics [--datasets a] [--sample N] [--first N]
        [--topic-affinity W,...] [--topic-floor F,...]   # settings compared on the same readers
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from citeulike import Dataset, Metrics, load  # noqa: E402

from recommender import pipeline  # noqa: E402
from recommender.base.config import RankingConfig, TopicConfig, UserConfig  # noqa: E402
from recommender.model import topic_clusters  # noqa: E402

MAX_TOPICS = 3
TARGET_SMALLEST = 1.25  # the smallest topic's R@50 against the single profile's
TARGET_OVERALL = 0.98  # overall R@50 and nDCG@20 against the single profile's
MAX_COST = 2.0  # seconds per reader with three topics against one
COST_READERS = 12  # readers with three topics timed (fresh copies: each one's classifier fit)


def email(user: str) -> str:
    return f"user{user}@citeulike.dev"


def split_stability(text: object, space: object, groups: list) -> float:
    """The data has no tags to compare the suggested topics with, so: how far the suggestion
    is a property of the library rather than of chance. The adjusted Rand index between the
    split of all the reader's stars and the split of a random 80% of them (seeded), on the
    stars both contain."""
    from sklearn.metrics import adjusted_rand_score

    ids = [p.id for g in groups for p in g.papers]
    full = np.array([n for n, g in enumerate(groups) for _ in g.papers])
    keep = np.sort(np.random.default_rng(0).choice(len(ids), size=int(0.8 * len(ids)), replace=False))
    rows = space.coordinates[[text.index[ids[i]] for i in keep]]  # type: ignore[attr-defined]
    labels = topic_clusters.split(topic_clusters.dense_rows(text, [ids[i] for i in keep], rows),  # type: ignore[arg-type]
                                  MAX_TOPICS)
    return float(adjusted_rand_score(full[keep], labels))


def round_robin(picks: list) -> list[str]:
    """A sectioned digest read as one ranked list: each section's first pick, then each one's
    second, and so on."""
    sections: dict[str, list[str]] = {}
    for r in picks:
        sections.setdefault(r.topic, []).append(r.paper.id)
    longest = max((len(s) for s in sections.values()), default=0)
    return [s[n] for n in range(longest) for s in sections.values() if n < len(s)]


def by_score(picks: list) -> list[str]:
    """A digest's picks in the order of the scores they show (then the digest's order)."""
    return [r.paper.id for r in sorted(picks, key=lambda r: (-r.score, r.rank))]


def smallest_topic_papers(data: Dataset, text: object, space: object, user: str, groups: list) -> set[str]:
    """The reader's held-out papers nearest (mean dense vector) the topic with the fewest stars."""
    def rows(ids: list[str]) -> np.ndarray:
        return topic_clusters.dense_rows(text, ids, space.coordinates[[text.index[p] for p in ids]])  # type: ignore

    held = [p for p in data.relevant(user) if p in text.index]  # type: ignore[attr-defined]
    if not held:
        return set()
    centres = np.array([rows([p.id for p in g.papers]).mean(axis=0) for g in groups])
    nearest = np.argmax(rows(held) @ centres.T, axis=1)
    smallest = int(np.argmin([len(g.papers) for g in groups]))
    return {p for p, n in zip(held, nearest, strict=True) if n == smallest}


def ceiling(data: Dataset, store: object, config: object, batch: int, readers: list[str], split: dict,
            smallest: dict[str, set[str]]) -> dict[str, float]:
    """How far giving picks to the smallest topic can lift its R@50: the single profile's recall
    of the smallest topic's held-out papers in its top 50, 100 and 200, its top 50 with the
    smallest topic's next 25 papers (the whole profile's order; each paper in its topic as the
    product assigns it), and 50 picks of the smallest topic's papers only."""
    from datetime import UTC, datetime

    from recommender.pipeline import topic_ranking

    users = [UserConfig(email=email(u), max_items=50) for u in readers if smallest[u]]
    full = pipeline.recommend(replace(config, users=tuple(users)), store, users, [batch],  # type: ignore[type-var]
                              limit=len(data.new))
    models = pipeline.load_models(store, config)  # type: ignore[arg-type]
    found: dict[str, list[float]] = {k: [] for k in ("top 50", "top 100", "top 200", "top 50 + 25", "50 of its own")}
    for user in (u for u in readers if smallest[u]):
        mine, order = smallest[user], [r.paper for r in full[email(user)]]
        ranking = pipeline.Ranking(config, store, models, datetime.now(UTC))  # type: ignore[arg-type]
        _, _, affinity = topic_ranking.section_profiles(ranking, topic_config(user, len(split[user])),  # type: ignore
                                                        store.user_id(email(user)))  # type: ignore
        small = int(np.argmin([len(g.papers) for g in split[user]]))
        own = [p.id for p, s in zip(order, topic_ranking.sections_of(models, affinity, order), strict=True) if s == small]
        ids = [p.id for p in order]
        top = set(ids[:50])
        for label, picked in (("top 50", top), ("top 100", set(ids[:100])), ("top 200", set(ids[:200])),
                              ("top 50 + 25", top | set(own[:25])),
                              ("50 of its own", set(own[:50]))):
            found[label].append(len(mine & picked) / len(mine))
    return {label: float(np.mean(values)) for label, values in found.items()}


def topic_config(user: str, count: int, prefix: str = "user") -> UserConfig:
    return UserConfig(email=f"{prefix}{user}@citeulike.dev", max_items=50,
                      topics=tuple(TopicConfig(name=f"t{n}") for n in range(count)))


def cost(data: Dataset, store: object, config: object, batch: int, split: dict) -> dict[str, float]:
    """Seconds per reader with three topics and with one profile: fresh copies of readers whose
    stars split into three (their profiles built by the first `recommend`, as for a reader no
    ingest has seen), then ranking again once their profiles are cached (ingest's work)."""
    readers = [u for u in sorted(split, key=int) if len(split[u]) == 3][:COST_READERS]
    ids = store.sync_users([f"one{u}@citeulike.dev" for u in readers] + [f"three{u}@citeulike.dev" for u in readers])  # type: ignore
    for user in readers:
        for n, suggestion in enumerate(split[user]):
            papers = [p.id for p in suggestion.papers]
            store.star(ids[f"one{user}@citeulike.dev"], papers, "import")  # type: ignore[attr-defined]
            store.star(ids[f"three{user}@citeulike.dev"], papers, "import", topic=f"t{n}")  # type: ignore[attr-defined]
    timed: dict[str, list[float]] = {"one": [], "three": [], "one cached": [], "three cached": []}
    users = {u: (UserConfig(email=f"one{u}@citeulike.dev", max_items=50), topic_config(u, 3, "three")) for u in readers}
    for user in readers:
        for label, user_config in zip(("one", "three"), users[user], strict=True):
            started = time.perf_counter()
            pipeline.recommend(replace(config, users=(user_config,)), store, [user_config], [batch], limit=50)  # type: ignore
            timed[label].append(time.perf_counter() - started)
    pipeline.refresh(store, replace(config, users=tuple(c for pair in users.values() for c in pair)))  # type: ignore
    for user in readers:
        for label, user_config in zip(("one cached", "three cached"), users[user], strict=True):
            started = time.perf_counter()
            pipeline.recommend(replace(config, users=(user_config,)), store, [user_config], [batch], limit=50)  # type: ignore
            timed[label].append(time.perf_counter() - started)
    return {label: statistics.median(seconds) for label, seconds in timed.items() if seconds} | {"readers": len(readers)}


def measure(data: Dataset, first: int, sample: int, settings: list[tuple[float, float]],
            baselines: object) -> dict[str, object]:
    import quality  # the store builder and the SVM of bench/quality.py

    users = data.eligible[first:first + sample]
    stars = {u: data.old_of(u) for u in users}
    ranking = replace(RankingConfig(), community="off", personal="on")
    with tempfile.TemporaryDirectory() as folder:
        store, config, batch = quality.build_store(data, Path(folder), stars, users, ranking)
        models = pipeline.load_models(store, config)
        split: dict[str, list[pipeline.topics.Suggestion]] = {}
        for user_config, user in zip(config.users, users, strict=True):
            found = pipeline.suggest_topics(config, store, user_config, MAX_TOPICS)
            if len(found) >= 2:
                split[user] = found
        readers = sorted(split, key=int)
        ids = store.sync_users([email(u) for u in readers])
        for user in readers:  # each star into its topic
            for n, suggestion in enumerate(split[user]):
                store.star(ids[email(user)], [p.id for p in suggestion.papers], "import", topic=f"t{n}")
        singles = [UserConfig(email=email(u), max_items=50) for u in readers]
        config = replace(config, users=tuple(singles))
        started = time.perf_counter()
        pipeline.refresh(store, config)  # every reader's whole profile, cached
        print(f"  [{data.name}] {len(readers)} of {len(users)} readers split; profiles built in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        single = pipeline.recommend(config, store, singles, [batch], limit=50)
        topical = [topic_config(u, len(split[u])) for u in readers]
        text, space = models.text, models.space
        assert space is not None
        smallest = {u: smallest_topic_papers(data, text, space, u, split[u]) for u in readers}
        found: dict[str, object] = {}
        for affinity, floor in settings:
            pipeline.topics.AFFINITY_WEIGHT, pipeline.topics.FLOOR_SHARE = affinity, floor
            with_topics = pipeline.recommend(replace(config, users=tuple(topical)), store, topical, [batch], limit=50)
            metrics = {name: Metrics.empty() for name in ("single", "topics", "round_robin",
                                                          "smallest_single", "smallest_topics")}
            for user in readers:
                relevant, picks = data.relevant(user), with_topics[email(user)]
                ours = [r.paper.id for r in single[email(user)]]
                metrics["single"].add(ours, relevant)
                metrics["topics"].add(by_score(picks), relevant)
                metrics["round_robin"].add(round_robin(picks), relevant)
                if smallest[user]:
                    metrics["smallest_single"].add(ours, smallest[user])
                    metrics["smallest_topics"].add(by_score(picks), smallest[user])
            found[f"{affinity},{floor}"] = {name: m.summary() for name, m in metrics.items()}
        limits = ceiling(data, store, config, batch, readers, split, smallest)
        seconds = cost(data, store, config, batch, split)
        stability = [split_stability(text, space, split[u]) for u in readers]
        store.close()
    svm, _ = baselines.run(readers, stars, "svm")  # type: ignore[attr-defined]
    return {
        "readers": len(readers), "of": len(users), "first": first,
        "topics": {k: sum(len(v) == k for v in split.values()) for k in range(2, MAX_TOPICS + 1)},
        "settings": found, "svm": svm.summary(), "seconds": seconds, "ceiling": limits,
        "stability_ari": float(np.mean(stability)) if stability else float("nan"),
    }


def report(name: str, found: dict[str, object], settings: list[tuple[float, float]]) -> bool:
    v, seconds, runs = found["svm"], found["seconds"], found["settings"]
    assert isinstance(v, dict) and isinstance(seconds, dict) and isinstance(runs, dict)
    print(f"[{name}] {found['readers']} of {found['of']} eligible DEV readers (from the {found['first']}th) "
          f"split into topics (readers by count: {found['topics']})")
    line = "  {:34s} R@20 {:.4f}  R@50 {:.4f} (±{:.4f})  nDCG@20 {:.4f} (±{:.4f})  smallest topic R@50 {}"
    base = runs[f"{settings[0][0]},{settings[0][1]}"]
    s, ss = base["single"], base["smallest_single"]
    print(line.format("single profile", s["R@20"], s["R@50"], s["se_R@50"], s["nDCG@20"], s["se_nDCG@20"],
                      f"{ss['R@50']:.4f} ({ss['users']} readers)"))
    print(line.format("SVM (arxiv-sanity-lite)", v["R@20"], v["R@50"], v["se_R@50"], v["nDCG@20"], v["se_nDCG@20"], ""))
    for affinity, floor in settings:
        run = runs[f"{affinity},{floor}"]
        t, rr, st = run["topics"], run["round_robin"], run["smallest_topics"]
        print(line.format(f"topics, affinity {affinity}, floor {floor}", t["R@20"], t["R@50"], t["se_R@50"],
                          t["nDCG@20"], t["se_nDCG@20"], f"{st['R@50']:.4f} ({st['R@50'] / ss['R@50']:.3f}x)")
              + f"; ratios {t['R@50'] / s['R@50']:.3f}x / {t['nDCG@20'] / s['nDCG@20']:.3f}x; round-robin nDCG@20 "
              f"{rr['nDCG@20']:.4f}")
    print("  smallest topic's R@50 if picks went to it: " + ", ".join(
        f"{label} {value:.4f} ({value / ss['R@50']:.2f}x)" for label, value in found["ceiling"].items()))  # type: ignore
    print(f"  suggest's stability (no tags in the data): ARI {found['stability_ari']:.3f} between the split of "
          "all stars and of a random 80% of them")
    run = runs[f"{settings[0][0]},{settings[0][1]}"]
    t, st = run["topics"], run["smallest_topics"]
    smallest_ratio = st["R@50"] / ss["R@50"] if ss["R@50"] else float("inf")
    r50, ndcg = t["R@50"] / s["R@50"], t["nDCG@20"] / s["nDCG@20"]
    built = seconds["three"] / seconds["one"]
    cached = seconds["three cached"] / seconds["one cached"]
    checks = [
        (f"smallest topic R@50 {smallest_ratio:.3f}x single (target >= {TARGET_SMALLEST})",
         smallest_ratio >= TARGET_SMALLEST),
        (f"overall R@50 {r50:.3f}x, nDCG@20 {ndcg:.3f}x single (target >= {TARGET_OVERALL})",
         r50 >= TARGET_OVERALL and ndcg >= TARGET_OVERALL),
        (f"topics above the SVM: R@50 {t['R@50'] / v['R@50']:.3f}x, nDCG@20 {t['nDCG@20'] / v['nDCG@20']:.3f}x",
         t["R@50"] > v["R@50"] and t["nDCG@20"] > v["nDCG@20"]),
        (f"seconds per reader ({seconds['readers']} readers), profiles built: one {seconds['one']:.2f}, three topics "
         f"{seconds['three']:.2f} ({built:.2f}x); cached: one {seconds['one cached']:.3f}, three "
         f"{seconds['three cached']:.3f} ({cached:.2f}x) (target: 3 topics <= {MAX_COST}x)",
         built <= MAX_COST and cached <= MAX_COST),
    ]
    print(f"  checks on the first setting (affinity {settings[0][0]}, floor {settings[0][1]}):")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'} {text}")
    return all(ok for _, ok in checks)


def main(datasets: list[str], sample: int, first: int = 0, affinity: str | None = None, floor: str | None = None) -> int:
    import quality

    weights = [float(w) for w in affinity.split(",")] if affinity else [pipeline.topics.AFFINITY_WEIGHT]
    floors = [float(f) for f in floor.split(",")] if floor else [pipeline.topics.FLOOR_SHARE]
    settings = list(itertools.product(weights, floors))
    ok = True
    for name in datasets:
        data = load(name)
        ok = report(name, measure(data, first, sample, settings, quality.Baselines(data)), settings) and ok
    return 0 if ok else 1
