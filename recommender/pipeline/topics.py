"""Topics: a reader's several interest profiles (``[[users.topics]]``), each ranked with the
stars and clicks that carry its name, and their picks joined into one digest in sections.

A reader with topics is ranked as one "section reader" per topic (and one more, "Other", for
the stars that carry no topic, when there are any): each has its own ``interests``,
``exclude``, ``authors`` and ``min_score``, and a profile that is the reader's whole profile
plus ``AFFINITY_WEIGHT`` times the topic's affinity (the centroid of its own signals): a
topic's stars are few, a classifier fit on them alone ranks worse than the whole library's
even for the topic's own papers (bench/RESULTS.md), and the centroid costs no fit.
A paper belongs to the section where its affinity ranks highest among the candidates
(``assigned``), never two. The digest's budget (``max_items``, or ``--limit``): sections with a
``max_items`` get it; the others are each guaranteed ``FLOOR_SHARE`` of an even share of the
rest (their best papers), and what is left goes by merit, the best whole-profile scores of
any of them, so that a small topic is never crowded out and the rest is what the reader would
have got with one profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from recommender.base.config import RankingConfig, TopicConfig, UserConfig
from recommender.base.domain import Paper, Recommendation, Signal
from recommender.model import profiles, topic_clusters
from recommender.model.own_classifier import LsaSpace
from recommender.model.reader_factors import CollabModel
from recommender.model.tfidf import TextModel
from recommender.model.unit_rows import unit_rows
from recommender.store import Store

OTHER = "Other"  # the section of the stars and clicks that carry no topic
# A topic's profile: the reader's whole profile plus this many times the topic's affinity (unit
# centroid rows of its signals); tuned on CiteULike DEV readers (bench/RESULTS.md).
AFFINITY_WEIGHT = 0.05
# The share of its even part of the budget each topic without max_items is guaranteed; the
# rest of the budget goes by merit. 0.7: on 355-357 readers of each CiteULike set it lifts the
# smallest topic on both without losing 2% overall (bench/RESULTS.md, "Topics on 400 readers").
FLOOR_SHARE = 0.7


@dataclass(frozen=True)
class Section:
    """One topic of a reader as ranking sees it: the reader's settings narrowed to the topic,
    the signals that carry its name, and its share of the digest (None: an even share)."""

    name: str
    user: UserConfig
    signals: list[Signal]
    max_items: int | None


def sections(user: UserConfig, signals: Sequence[tuple[Signal, str | None]],
             only: str | None = None) -> list[Section]:
    """The reader's sections in config order, "Other" last when untopiced signals exist;
    ``only``: that one topic (by name, any case)."""
    by_topic: dict[str | None, list[Signal]] = {}
    known = {t.name.lower(): t.name for t in user.topics}
    for signal, topic in signals:
        # A star whose topic left the config counts as untopiced.
        by_topic.setdefault(known.get(topic.lower()) if topic else None, []).append(signal)
    found = [Section(t.name, _narrowed(user, t), by_topic.get(t.name, []), t.max_items) for t in user.topics]
    if by_topic.get(None):
        other = replace(user, topics=(), interests=user.interests)
        found.append(Section(OTHER, other, by_topic[None], None))
    if only is not None:
        found = [s for s in found if s.name.lower() == only.lower()]
    return found


def _narrowed(user: UserConfig, topic: TopicConfig) -> UserConfig:
    """The reader's settings for one topic: the topic's keywords, the reader's exclusions and
    followed authors besides its own."""
    return replace(user, topics=(), interests=topic.interests, exclude=user.exclude + topic.exclude,
                   authors=tuple(dict.fromkeys(topic.authors + user.authors)),
                   min_score=topic.min_score if topic.min_score is not None else user.min_score)


def affinities(models: profiles.Models, pairs: Sequence[tuple[int, UserConfig]], signals: dict[int, list[Signal]],
               ranking: RankingConfig, now: datetime) -> profiles.Profiles:
    """Each section's affinity rows: the unit centroid of its signals' TF-IDF rows and, where
    readers get their own classifiers, beside it the unit centroid of their dense features (no
    classifier is fit); with reader factors, the sections' profiles as any reader's (no fit
    either)."""
    space = models.space
    if models.collab is not None or space is None:
        return profiles.from_signals(models, pairs, signals, ranking, now)[0]
    built, pull = profiles.from_signals(profiles.Models(models.text, None, None), pairs, signals, ranking, now)
    return replace(built, dense=unit_rows(np.asarray(pull @ space.coordinates, dtype=np.float32)))


def with_whole(affinity: profiles.Profiles, whole: profiles.Profiles, weight: float) -> profiles.Profiles:
    """Every section's profile: the reader's whole one (its row 0) plus ``weight`` times the
    section's affinity; the scores add up the same way, as both are linear in the paper's
    features (a missing dense part counts as zero)."""
    rows = affinity.matrix.shape[0]
    matrix = (weight * affinity.matrix + sp.vstack([whole.matrix[0]] * rows)).tocsr().astype(np.float32)
    dense = None if affinity.dense is None else weight * affinity.dense
    if whole.dense is not None:
        repeated = np.repeat(whole.dense[:1], rows, axis=0)
        dense = repeated if dense is None else dense + repeated
    return replace(affinity, matrix=matrix, dense=None if dense is None else dense.astype(np.float32))


def budgets(total: int, shares: Sequence[int | None]) -> list[int]:
    """``total`` picks split between sections: those with a ``max_items`` get it (scaled down
    together when they ask for more than ``total``), the rest share what is left evenly (the
    first ones one more when it does not divide)."""
    fixed = sum(s for s in shares if s is not None)
    if fixed > total:
        scaled = [(s * total) // fixed if s is not None else 0 for s in shares]
        spare = total - sum(scaled)
        for i in sorted(range(len(shares)), key=lambda i: -(shares[i] or 0))[:spare]:
            scaled[i] += 1
        return scaled
    free = [i for i, s in enumerate(shares) if s is None]
    left = total - fixed
    result = [s if s is not None else 0 for s in shares]
    for n, i in enumerate(free):
        result[i] = left // len(free) + (1 if n < left % len(free) else 0)
    return result


def joined(names: Sequence[str], ranked: Sequence[list[Recommendation]], shares: Sequence[int]) -> list[Recommendation]:
    """One digest from each section's ranked picks (best first): each section shows its share;
    a paper wanted by several goes to the one where it ranks best, the others take their next;
    a share a section cannot fill goes to the next sections that can. Picks come out in section
    order, ranked 1..n through the digest, each carrying its section's name."""
    return _labelled(names, _shown(ranked, shares))


def _labelled(names: Sequence[str], shown: list[list[Recommendation]]) -> list[Recommendation]:
    picks = [replace(r, topic=names[s]) for s, section in enumerate(shown) for r in section]
    return [replace(r, rank=n + 1) for n, r in enumerate(picks)]


def _shown(ranked: Sequence[list[Recommendation]], shares: Sequence[int]) -> list[list[Recommendation]]:
    """What ``joined`` shows, section by section."""
    position = [{r.paper.id: n for n, r in enumerate(picks)} for picks in ranked]
    claimed: dict[str, int] = {}
    shares = list(shares)

    def shown() -> list[list[Recommendation]]:
        return [[r for r in picks if claimed.get(r.paper.id, s) == s][:shares[s]] for s, picks in enumerate(ranked)]

    while True:
        current = shown()
        wanted: dict[str, list[int]] = {}
        for s, picks in enumerate(current):
            for r in picks:
                wanted.setdefault(r.paper.id, []).append(s)
        contested = {p: ss for p, ss in wanted.items() if len(ss) > 1}
        if contested:
            for paper_id, contenders in contested.items():
                claimed[paper_id] = min(contenders, key=lambda s: (position[s][paper_id],
                                                                   -ranked[s][position[s][paper_id]].score, s))
            continue
        spare = sum(shares) - sum(len(picks) for picks in current)
        growing = [s for s, picks in enumerate(current) if len(picks) == shares[s]
                   and any(claimed.get(r.paper.id, s) == s for r in ranked[s][shares[s]:]
                           if r.paper.id not in wanted)]
        if spare <= 0 or not growing:
            break
        for s in range(len(shares)):  # the unfillable shares go to the sections that have more
            if s not in growing:
                shares[s] = len(current[s])
        for n in range(spare):
            shares[growing[n % len(growing)]] += 1
    return current


def floors(total: int, fixed: Sequence[int | None], floor_share: float) -> list[int]:
    """Each section's guaranteed picks: ``budgets`` gives the sections with a ``max_items`` their
    count, and those without ``floor_share`` of their even share (the rest goes by merit)."""
    shares = budgets(total, fixed)
    return [share if f is not None else int(floor_share * share) for share, f in zip(shares, fixed, strict=True)]


def assigned(affinity: np.ndarray) -> np.ndarray:
    """Each candidate's section (a column of sections x candidates affinity scores): the one
    where its affinity ranks highest among the candidates (rank percentiles: sections whose
    stars are many or close together score higher everywhere), the first on equal ranks."""
    ranks = np.argsort(np.argsort(-affinity, axis=1, kind="stable"), axis=1, kind="stable")
    return np.argmin(ranks, axis=0)


def interleaved(names: Sequence[str], ranked: Sequence[list[Recommendation]], fixed: Sequence[int | None],
                total: int, floor_share: float, section_of: dict[str, int],
                first: frozenset[str] = frozenset(), merit: dict[str, float] | None = None) -> list[Recommendation]:
    """One digest of ``total`` picks, each paper in its section (``section_of``, from
    ``assigned``): each section's guaranteed picks (see ``floors``; a share a section cannot
    fill goes to the others), its best papers; then, for the sections without a ``max_items``,
    the best of the other papers by ``merit`` (default: the score they have in their section;
    ``first``: papers lifted above any, a followed author's). Picks come out as ``joined``'s:
    section order, each section best first."""
    own = [[r for r in picks if section_of.get(r.paper.id) == s] for s, picks in enumerate(ranked)]
    shown = _shown(own, floors(total, fixed, floor_share))
    taken = {r.paper.id for section in shown for r in section}
    free = {s for s, f in enumerate(fixed) if f is None}
    worth = merit or {}
    best = sorted(((r.paper.id not in first, -worth.get(r.paper.id, r.score), n, s), r) for s in free
                  for n, r in enumerate(own[s]) if r.paper.id not in taken)
    for (*_, s), r in best[:max(0, total - len(taken))]:
        shown[s].append(r)
    order = [{r.paper.id: n for n, r in enumerate(picks)} for picks in own]
    return _labelled(names, [sorted(section, key=lambda r: order[s][r.paper.id]) for s, section in enumerate(shown)])


@dataclass(frozen=True)
class Suggestion:
    """A suggested topic: a name from its terms, and its papers, nearest its centre first."""

    name: str
    terms: list[str]
    papers: list[Paper]

    def notes(self, shown: int = topic_clusters.SHOWN_PAPERS) -> list[str]:
        return ([f"{len(self.papers)} starred paper(s); terms: {', '.join(self.terms)}"]
                + [f"  {p.id}  {p.display.title[:90]}" for p in self.papers[:shown]])


def suggest(store: Store, text: TextModel, space: LsaSpace | None, collab: CollabModel | None, user_id: int,
            max_k: int) -> list[Suggestion]:
    """At most ``max_k`` coherent groups of the reader's starred papers (see model.topic_clusters),
    largest first; one group when the stars do not split."""
    starred = [p for p, _ in store.stars(user_id) if p.id in text.index]
    if not starred:
        return []
    ids = [p.id for p in starred]
    given = None
    if space is not None:
        given = space.coordinates[[text.index[i] for i in ids]]
    elif collab is not None and all(i in collab.index for i in ids):
        given = collab.predicted[[collab.index[i] for i in ids]]
    vectors = topic_clusters.dense_rows(text, ids, given)
    labels = topic_clusters.split(vectors, max_k) if len(ids) >= 2 * topic_clusters.MIN_GROUP else \
        np.zeros(len(ids), dtype=np.int64)
    found, names = [], set()
    for group in topic_clusters.groups(text, ids, vectors, labels):
        name = group.name
        while name.lower() in names:  # two groups named by the same terms
            name += "'"
        names.add(name.lower())
        found.append(Suggestion(name, group.terms, [starred[i] for i in group.members]))
    return found
