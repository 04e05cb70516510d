"""Topics: a reader's several interest profiles (``[[users.topics]]``), each ranked with the
stars and clicks that carry its name, and their picks joined into one digest in sections.

A reader with topics is ranked as one "section reader" per topic (and one more, "Other", for
the stars that carry no topic, when there are any): each has its own profile (its own
classifier), ``interests``, ``exclude``, ``authors`` and ``min_score``. The digest's budget
(``max_items``, or ``--limit``) is split between the sections by their ``max_items`` or evenly;
a paper several sections would show goes to the one where it ranks best (then the higher
score, then the config's order), never twice, and the others take their next paper.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from recommender.base.config import TopicConfig, UserConfig
from recommender.base.domain import Paper, Recommendation, Signal
from recommender.model import profiles, topic_clusters
from recommender.model.own_classifier import LsaSpace
from recommender.model.reader_factors import CollabModel
from recommender.model.tfidf import TextModel
from recommender.store import Store

OTHER = "Other"  # the section of the stars and clicks that carry no topic
# Each topic's profile plus this many times the reader's whole profile: a topic's own stars
# are few, and what the reader starred elsewhere still says what they read (measured on
# CiteULike: bench/RESULTS.md). A topic's picks then lean to it without forgetting the rest.
WHOLE_WEIGHT = 1.0


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


def with_whole(sections_built: profiles.Profiles, whole: profiles.Profiles, weight: float) -> profiles.Profiles:
    """Every section's profile plus ``weight`` times the reader's whole one (its row 0): the
    scores add up the same way, as both are linear in the paper's features."""
    rows = sections_built.matrix.shape[0]
    matrix = (sections_built.matrix + weight * sp.vstack([whole.matrix[0]] * rows)).tocsr()
    dense = sections_built.dense
    if dense is not None and whole.dense is not None:
        dense = dense + weight * np.repeat(whole.dense[:1], rows, axis=0)
    return replace(sections_built, matrix=matrix, dense=dense)


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
    picks = [replace(r, topic=names[s]) for s, section in enumerate(current) for r in section]
    return [replace(r, rank=n + 1) for n, r in enumerate(picks)]


def config_block(topics: Sequence[tuple[str, Sequence[str]]]) -> str:
    """A ready-to-paste ``[[users.topics]]`` block: each topic's name and, as comments, the
    lines that describe it (its papers, its terms)."""
    lines = []
    for name, notes in topics:
        lines += ["[[users.topics]]", f"name = {json.dumps(name[:64], ensure_ascii=False)}"]
        lines += [f"# {note}" for note in notes]
        lines.append("")
    return "\n".join(lines)


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
