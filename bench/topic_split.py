"""Topics on real CiteULike libraries (DEV users), through the product: the same reader ranked
with one profile and with topics, in one store (`community = "off"`, `personal = "on"`: each
reader from their own stars, as a one-reader install ranks them).

Protocol (the data has no tags, so topics come from clustering the training stars):
1. For each of the first SAMPLE eligible DEV users, the product's `profile topics --suggest
   --max 3` (pipeline.suggest_topics) splits their old (training) papers; readers whose stars
   do not split into two groups or more are left out.
2. Each held-out (new) relevant paper belongs to the topic whose stars' mean dense vector
   (the product's own vectors) is nearest; the reader's smallest topic is the one with the
   fewest training stars.
3. Single: the reader's stars untopiced, `recommend --limit 50`. Topics: the same stars in
   their topics (`[[users.topics]]` t0..tk, no max_items: the 50 split evenly),
   `recommend --limit 50`. For R@20 and nDCG@20 the topics' digest is read round-robin
   (each topic's first pick, then each one's second, ...): its sections have no order
   between them.
4. Measured: R@50 of the smallest topic's held-out papers (readers with one at least), overall
   R@20, R@50 and nDCG@20, arxiv-sanity-lite's SVM on the same readers, and the seconds per
   reader of ranking (fitting each profile's classifier included) by number of topics.

    python bench/quality.py --topics [--datasets a] [--sample N]
"""

from __future__ import annotations

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


def topics_email(user: str) -> str:
    return f"topics{user}@citeulike.dev"


def one_email(user: str) -> str:
    return f"one{user}@citeulike.dev"


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


def measure(data: Dataset, sample: int, baselines: object) -> dict[str, object]:
    import quality  # the store builder and the SVM of bench/quality.py

    users = data.eligible[:sample]
    stars = {u: data.old_of(u) for u in users}
    ranking = replace(RankingConfig(), community="off", personal="on")
    with tempfile.TemporaryDirectory() as folder:
        store, config, batch = quality.build_store(data, Path(folder), stars, users, ranking)
        models = pipeline.refresh(store, config)
        split: dict[str, list[pipeline.topics.Suggestion]] = {}
        for user in users:
            found = pipeline.suggest_topics(config, store, config.users[users.index(user)], MAX_TOPICS)
            if len(found) >= 2:
                split[user] = found
        readers = sorted(split, key=int)
        ids = store.sync_users([topics_email(u) for u in readers] + [one_email(u) for u in readers])
        topical, whole = [], []
        for user in readers:
            names = [f"t{n}" for n in range(len(split[user]))]
            for name, suggestion in zip(names, split[user], strict=True):
                store.star(ids[topics_email(user)], [p.id for p in suggestion.papers], "import", topic=name)
            known = store.existing_ids(stars[user])  # (papers without text were never stored)
            store.star(ids[one_email(user)], [p for p in stars[user] if p in known], "import", topic="all")
            topical.append(UserConfig(email=topics_email(user), max_items=50,
                                      topics=tuple(TopicConfig(name=n) for n in names)))
            whole.append(UserConfig(email=one_email(user), max_items=50, topics=(TopicConfig(name="all"),)))
        singles = [u for u in config.users if u.email.split("@")[0].removeprefix("user") in split]
        single = pipeline.recommend(config, store, singles, [batch], limit=50)
        # Cost: the same path (fit each topic's classifier, rank, join) for one topic of all
        # the stars and for the split.
        seconds_by_count: dict[int, list[float]] = {}
        with_topics = {}
        for user_config in whole + topical:
            started = time.perf_counter()
            picks = pipeline.recommend(replace(config, users=(user_config,)), store, [user_config], [batch], limit=50)
            seconds_by_count.setdefault(len(user_config.topics), []).append(time.perf_counter() - started)
            with_topics.update(picks)
        single_seconds = statistics.median(seconds_by_count.pop(1))
        text, space = models.text, models.space
        stability = [split_stability(text, space, split[u]) for u in readers] if space is not None else []
        overall_single, overall_topics, smallest_single, smallest_topics = (Metrics.empty() for _ in range(4))
        for user in readers:
            relevant = data.relevant(user)
            picks_single = [r.paper.id for r in single[f"user{user}@citeulike.dev"]]
            picks_topics = with_topics[topics_email(user)]
            overall_single.add(picks_single, relevant)
            overall_topics.add(round_robin(picks_topics), relevant)
            groups = split[user]
            centres = [topic_clusters.dense_rows(text, [p.id for p in g.papers], None if space is None else
                                                 space.coordinates[[text.index[p.id] for p in g.papers]]).mean(axis=0)
                       for g in groups]
            held = [p for p in relevant if p in text.index]
            if space is not None and held:
                vectors = topic_clusters.dense_rows(text, held, space.coordinates[[text.index[p] for p in held]])
                nearest = np.argmax(vectors @ np.array(centres).T, axis=1)
                smallest = int(np.argmin([len(g.papers) for g in groups]))
                mine = {p for p, n in zip(held, nearest, strict=True) if n == smallest}
                if mine:
                    smallest_single.add(picks_single, mine)
                    smallest_topics.add([r.paper.id for r in picks_topics], mine)
        store.close()
    svm, _ = baselines.run(readers, stars, "svm")  # type: ignore[attr-defined]
    return {
        "readers": len(readers), "of": len(users),
        "topics": {k: len(v) for k, v in sorted(seconds_by_count.items())},
        "single": overall_single.summary(), "with_topics": overall_topics.summary(), "svm": svm.summary(),
        "smallest_single": smallest_single.summary(), "smallest_topics": smallest_topics.summary(),
        "seconds_single": float(single_seconds),
        "stability_ari": float(np.mean(stability)) if stability else float("nan"),
        "seconds_by_topics": {k: statistics.median(v) for k, v in sorted(seconds_by_count.items())},
    }


def report(name: str, found: dict[str, object]) -> bool:
    s, t, v = found["single"], found["with_topics"], found["svm"]
    ss, st = found["smallest_single"], found["smallest_topics"]
    assert isinstance(s, dict) and isinstance(t, dict) and isinstance(v, dict)
    assert isinstance(ss, dict) and isinstance(st, dict)
    seconds = found["seconds_by_topics"]
    assert isinstance(seconds, dict)
    print(f"[{name}] {found['readers']} of {found['of']} readers split into topics {found['topics']}")
    for label, m in (("single profile", s), ("topics (round-robin)", t), ("SVM (arxiv-sanity-lite)", v)):
        print(f"  {label:26s} R@20 {m['R@20']:.4f}  R@50 {m['R@50']:.4f} (±{m['se_R@50']:.4f})  "
              f"nDCG@20 {m['nDCG@20']:.4f} (±{m['se_nDCG@20']:.4f})")
    print(f"  suggest's stability (no tags in the data): ARI {found['stability_ari']:.3f} between the split of "
          "all stars and of a random 80% of them")
    print(f"  smallest topic's held-out papers ({ss['users']} readers): single R@50 {ss['R@50']:.4f}, "
          f"topics R@50 {st['R@50']:.4f}")
    smallest_ratio = st["R@50"] / ss["R@50"] if ss["R@50"] else float("inf")
    r50, ndcg = t["R@50"] / s["R@50"], t["nDCG@20"] / s["nDCG@20"]
    one = found["seconds_single"]
    assert isinstance(one, float)
    cost = {k: secs / one for k, secs in seconds.items()}
    checks = [
        (f"smallest topic R@50 {smallest_ratio:.3f}x single (target >= {TARGET_SMALLEST})",
         smallest_ratio >= TARGET_SMALLEST),
        (f"overall R@50 {r50:.3f}x, nDCG@20 {ndcg:.3f}x single (target >= {TARGET_OVERALL})",
         r50 >= TARGET_OVERALL and ndcg >= TARGET_OVERALL),
        (f"topics above the SVM: R@50 {t['R@50'] / v['R@50']:.3f}x, nDCG@20 {t['nDCG@20'] / v['nDCG@20']:.3f}x",
         t["R@50"] > v["R@50"] and t["nDCG@20"] > v["nDCG@20"]),
        (f"seconds per reader: one profile {one:.2f}; "
         + ", ".join(f"{k} topics {secs:.2f} ({cost[k]:.2f}x)" for k, secs in seconds.items())
         + f" (target: 3 topics <= {MAX_COST}x)", cost.get(3, 0.0) <= MAX_COST),
    ]
    for line, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'} {line}")
    return all(ok for _, ok in checks)


def main(datasets: list[str], sample: int, whole: float | None = None) -> int:
    import quality

    if whole is not None:
        pipeline.topics.WHOLE_WEIGHT = whole
    print(f"each topic's profile plus {pipeline.topics.WHOLE_WEIGHT} x the reader's whole profile")
    ok = True
    for name in datasets:
        data = load(name)
        ok = report(name, measure(data, sample, quality.Baselines(data))) and ok
    return 0 if ok else 1
