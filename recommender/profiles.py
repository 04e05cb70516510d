"""User profiles: a Rocchio-style weighted sum of the vectors of the papers a user
starred (and clicked on), plus their ``interests`` keywords while they have few stars.

A profile is persisted in term space ({term: weight}) so it survives a refit: when only
the model changed, the stored terms are projected into the new vocabulary; when the
user's signals changed, it is rebuilt from the papers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from recommender.config import RankingConfig, UserConfig
from recommender.store import Store
from recommender.textmodel import TextModel

FEW_STARS = 5  # below this many stars, interests keywords join the profile


@dataclass(frozen=True)
class Signal:
    """One paper's pull on a profile: a star, or a feedback click."""

    paper_id: str
    kind: str  # star | more | less | open
    at: datetime


@dataclass
class Profile:
    vector: np.ndarray  # unit length, in the model's term space; zero when empty
    positives: list[str]  # papers that pulled the profile towards them, strongest first
    negatives: list[str]
    interests: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not np.any(self.vector)


def signal_weight(signal: Signal, ranking: RankingConfig, now: datetime) -> float:
    base = {"star": 1.0, "more": ranking.more_weight, "less": -ranking.less_weight,
            "open": ranking.open_weight}[signal.kind]
    if ranking.star_half_life_days > 0:
        age_days = max(0.0, (now - signal.at).total_seconds() / 86400)
        base *= math.pow(0.5, age_days / ranking.star_half_life_days)
    return base


def signal_version(signals: list[Signal], user: UserConfig, ranking: RankingConfig) -> str:
    text = json.dumps([[s.paper_id, s.kind, s.at.isoformat()] for s in signals]
                      + [list(user.interests), repr(ranking)], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def build(model: TextModel, signals: list[Signal], user: UserConfig, ranking: RankingConfig,
          now: datetime) -> Profile:
    vector = np.zeros(len(model.terms))
    weights: dict[str, float] = {}
    for signal in signals:
        if signal.paper_id in model.index:
            weights[signal.paper_id] = weights.get(signal.paper_id, 0.0) + signal_weight(signal, ranking, now)
    if weights:
        ids = list(weights)
        coefficients = np.array([weights[p] for p in ids])
        vector += np.asarray(model.rows(ids).T @ coefficients).ravel()
    stars = sum(1 for s in signals if s.kind == "star")
    interests = user.interests if stars < FEW_STARS else ()
    if interests and ranking.interests_weight > 0:
        keywords = model.vectors(list(interests), [""] * len(interests))
        vector += ranking.interests_weight * np.asarray(keywords.sum(axis=0)).ravel()
    norm = np.linalg.norm(vector)
    if norm > 0:
        vector /= norm
    order = sorted(weights, key=lambda p: (-abs(weights[p]), p))
    return Profile(
        vector=vector,
        positives=[p for p in order if weights[p] > 0],
        negatives=[p for p in order if weights[p] < 0],
        interests=interests,
    )


def current(store: Store, model: TextModel, user_id: int, user: UserConfig, ranking: RankingConfig,
            now: datetime) -> Profile:
    """The user's profile for this model: reused, re-projected or rebuilt as needed, and saved."""
    signals = [Signal(pid, "star", at) for pid, at in sorted(store.starred_ids(user_id).items())]
    signals += [Signal(pid, kind, at) for pid, kind, at in store.feedback_signals(user_id)]
    version = signal_version(signals, user, ranking)
    saved = store.load_profile(user_id)
    if saved is not None and saved.signal_version == version:
        positives = [str(s[0]) for s in saved.sources if s[1] > 0]
        negatives = [str(s[0]) for s in saved.sources if s[1] < 0]
        interests = user.interests if sum(1 for s in signals if s.kind == "star") < FEW_STARS else ()
        vector = model.from_terms(saved.terms)
        norm = np.linalg.norm(vector)
        if norm > 0:
            vector /= norm
        profile = Profile(vector, positives, negatives, interests)
        if saved.model_version != model.version:
            store.save_profile(user_id, model.version, version, saved.terms, saved.sources)
        return profile
    profile = build(model, signals, user, ranking, now)
    sources: list[list[object]] = [[p, 1] for p in profile.positives] + [[p, -1] for p in profile.negatives]
    store.save_profile(user_id, model.version, version, model.to_terms(profile.vector), sources)
    return profile
