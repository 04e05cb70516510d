"""Ranking a reader with topics (see pipeline.topics): each section's profile (the reader's
whole profile plus the section's affinity), one ``rank_many`` call for every section, and the
digest they make together (``topics.interleaved``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import recommender.pipeline.topics as topics
from recommender.base.config import Config, UserConfig
from recommender.base.domain import Paper, Recommendation
from recommender.model import profiles
from recommender.model.ranking import Choice, followed, rank_many
from recommender.pipeline.stored_models import Models, Ranking, cached_or_built_profiles

RANKED_PER_PICK = 2  # each section ranks this many candidates per pick of the digest (merit picks from them all)


def choice_for(config: Config, user: UserConfig, limit: int | None, models: Models) -> Choice:
    r = config.ranking
    # A reader's own classifier carries its LSA part's weight already.
    dense_weight = r.collaborative_weight if models.collab is not None else 1.0
    return Choice(user=user.email, limit=limit or user.max_items, min_score=user.min_score, exclude=user.exclude,
                  authors=user.authors, why_terms=r.why_terms, collaborative_weight=dense_weight,
                  interest_boost=r.interest_boost, interests=user.interests)


def section_profiles(ranking: Ranking, user: UserConfig, user_id: int, only: str | None = None,
                     ) -> tuple[list[topics.Section], profiles.Profiles, profiles.Profiles]:
    """A reader's topics (see pipeline.topics), a profile for each: the reader's whole profile
    (cached like any reader's) plus ``topics.AFFINITY_WEIGHT`` times the section's affinity; and
    the affinities."""
    config, store, models, now = ranking.config, ranking.store, ranking.models, ranking.now
    signals = store.topic_signals(user_id)
    found = topics.sections(user, signals, only)
    pairs = [(-1 - n, section.user) for n, section in enumerate(found)]  # not user ids: never cached
    affinity = built = topics.affinities(models, pairs,
                                         {-1 - n: section.signals for n, section in enumerate(found)},
                                         config.ranking, now)
    if found:
        if any(signal.kind != "star" for signal, _ in signals):
            # The whole profile from the stars alone: a click teaches the topic it was made in only.
            stars = [signal for signal, _ in signals if signal.kind == "star"]
            whole, _ = profiles.from_signals(models, [(0, user)], {0: stars}, config.ranking, now)
        else:  # the reader's profile as ingest cached it
            whole = cached_or_built_profiles(store, models, [(user_id, user)], config.ranking, now, False)
        if not whole.empty(0):
            built = topics.with_whole(affinity, whole, topics.AFFINITY_WEIGHT)
    return found, built, affinity


def rank_topics(ranking: Ranking, user: UserConfig, user_id: int, candidates: list[Paper], limit: int | None,
                only: str | None = None) -> list[Recommendation]:
    """One reader's picks, section by section (see pipeline.topics)."""
    config, store, models = ranking.config, ranking.store, ranking.models
    found, built, affinity = section_profiles(ranking, user, user_id, only)
    if not found:
        return []
    total = limit or (found[0].max_items or user.max_items if only else user.max_items)
    skip = set(store.starred_ids(user_id)) | store.sent_map([user_id]).get(user_id, set())
    ranked_count = total if only or len(found) == 1 else RANKED_PER_PICK * total
    choices = [replace(choice_for(config, section.user, ranked_count, models), user=user.email) for section in found]
    ranked = rank_many(models, built, candidates, [skip] * len(found), choices, store.titles_and_abstracts)
    names = [section.name for section in found]
    if only:
        return topics.joined(names, ranked, [total])
    lifted = frozenset(r.paper.id for section, picks in zip(found, ranked, strict=True) for r in picks
                       if followed(r.paper, section.user.authors))
    # Ranks among every candidate: the same for a paper whatever the sections ranked.
    scores = affinity_scores(models, affinity, candidates)
    sections = topics.assigned(scores).tolist()
    section_of = dict(zip([p.id for p in candidates], sections, strict=True))
    # Merit: the whole profile's score (a section's score less its affinity part, when the
    # reader has a whole profile), so the picks beyond the floors are the single profile's.
    pulled = topics.AFFINITY_WEIGHT if built is not affinity else 0.0
    column = {p.id: n for n, p in enumerate(candidates)}
    merit = {r.paper.id: r.score - pulled * float(scores[s, column[r.paper.id]])
             for s, picks in enumerate(ranked) for r in picks if section_of[r.paper.id] == s}
    return topics.interleaved(names, ranked, [section.max_items for section in found], total, topics.FLOOR_SHARE,
                              section_of, lifted, merit)


def sections_of(models: Models, affinity: profiles.Profiles, pool: list[Paper]) -> list[int]:
    """The section each paper of ``pool`` belongs to (see topics.assigned)."""
    return [int(s) for s in topics.assigned(affinity_scores(models, affinity, pool))]


def affinity_scores(models: Models, affinity: profiles.Profiles, pool: list[Paper]) -> np.ndarray:
    """Sections x papers: each paper's affinity to each section (its TF-IDF row and, without
    reader factors, its dense features, against the section's affinity rows)."""
    if not pool:
        return np.zeros((affinity.matrix.shape[0], 0))
    scores = np.asarray((affinity.matrix @ models.text.rows([p.id for p in pool]).T).todense(), dtype=np.float64)
    space = models.space
    if models.collab is None and space is not None and affinity.dense is not None \
            and affinity.dense.shape[1] == space.coordinates.shape[1]:
        scores += affinity.dense @ space.coordinates[[models.text.index[p.id] for p in pool]].T
    return scores
