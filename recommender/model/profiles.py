"""User profiles: a Rocchio-style weighted sum of the vectors of the papers a user starred
(+1 each) and clicked on ("more" `more_weight`, "less" minus `less_weight`, "open"
`open_weight`), plus their ``interests`` keywords while they have few stars; unit length.

Profiles are built for many users at once from the signal log (one sparse product), so
ranking every subscriber costs a few matrix products, not a query per user. Each profile is
also persisted in term space ({term: weight}, its strongest terms) whenever the user's
signals or the model change, so it can be inspected and survives a refit.

Beside a SQLite database, what ingest and star imports build is also kept as a cache of
arrays (`CachedProfiles`), so ranking reads those users' profiles instead of rebuilding them:
a user's row is taken while their signal generation (counted by triggers on every change to
their stars and feedback) and interests are those it was built from; the others are rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from recommender.base.config import RankingConfig, UserConfig
from recommender.base.domain import Signal
from recommender.model import own_classifier, reader_model, term_ridge
from recommender.model.own_classifier import LsaSpace
from recommender.model.reader_factors import CollabModel
from recommender.model.tfidf import TextModel
from recommender.model.unit_rows import unit_rows
from recommender.model.written_terms import BatchForms

FEW_STARS = 5  # below this many stars, interests keywords join the profile
PROFILE_TERMS = 1000  # terms kept per persisted profile
PROFILE_CHUNK = 2000  # users per sparse product when building profiles
CACHE_FORMAT = 16  # part of the cache's key: a new way of building profiles never reads old ones


@dataclass
class Profile:
    """One user's profile, for explanations and `profile show`."""

    vector: np.ndarray  # unit length, in the model's term space; zero when empty
    positives: list[str]  # papers that pulled the profile towards them, strongest first
    negatives: list[str]
    interests: tuple[str, ...]
    weights: dict[str, float] = field(default_factory=dict)  # paper -> its pull

    @property
    def empty(self) -> bool:
        return not np.any(self.vector)


@dataclass
class Profiles:
    """Profiles of many users: row i belongs to ``user_ids[i]``."""

    user_ids: list[int]
    matrix: sp.csr_matrix  # users x terms, unit rows (zero rows: no profile yet)
    # users x k, or None: reader factors (unit rows) with a collaborative model, followed by the
    # weights of the readers' own models over the dense features when there are some; else the
    # dense weights of the readers' own classifiers (zero rows for readers without one)
    dense: np.ndarray | None
    weights: list[dict[str, float]]
    interests: list[tuple[str, ...]]
    starred: list[set[str]]  # each user's starred papers (never recommended to them)

    def empty(self, i: int) -> bool:
        return self.matrix.indptr[i] == self.matrix.indptr[i + 1]

    def profile(self, i: int) -> Profile:
        weights = self.weights[i]
        order = sorted(weights, key=lambda p: (-abs(weights[p]), p))
        return Profile(vector=self.matrix[i].toarray().ravel(), positives=[p for p in order if weights[p] > 0],
                       negatives=[p for p in order if weights[p] < 0], interests=self.interests[i], weights=weights)


@dataclass
class CachedProfiles:
    """Profiles as ingest or a star import built them, with what each was built from besides the
    models and settings that key the cache: its user's signal generation and interests. Arrays
    only: loading maps them, and a command that ranks a few users reads only their rows."""

    user_ids: np.ndarray  # int64
    generations: np.ndarray  # int64, each user's signal generation when the row was built
    interests: np.ndarray  # int64 fingerprint of each user's interests keywords
    matrix: sp.csr_matrix
    dense: np.ndarray | None
    pulls: sp.csr_matrix  # users x papers: each paper's summed pull (Profiles.weights)
    stars: sp.csr_matrix  # users x papers: ones where the user starred the paper


def signal_weight(signal: Signal, ranking: RankingConfig, now: datetime) -> float:
    base = {"star": 1.0, "more": ranking.more_weight, "less": -ranking.less_weight,
            "open": ranking.open_weight}[signal.kind]
    if ranking.star_half_life_days > 0:
        age_days = max(0.0, (now - signal.at).total_seconds() / 86400) if signal.at is not None else 0.0
        base *= math.pow(0.5, age_days / ranking.star_half_life_days)
    return base


def signal_version(signals: list[Signal], user: UserConfig, ranking: RankingConfig) -> str:
    text = json.dumps([[s.paper_id, s.kind, s.at.isoformat() if s.at else None] for s in signals]
                      + [list(user.interests), repr(ranking)], sort_keys=True)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Models:
    """The fitted models ranking reads, handed around together."""

    text: TextModel
    collab: CollabModel | None
    space: LsaSpace | None  # when readers get their own classifiers or reader models
    written: BatchForms | None = None  # how the newest batch's papers write their terms (explanations)


def from_signals(models: Models, users: Sequence[tuple[int, UserConfig]], signals: dict[int, list[Signal]],
                 ranking: RankingConfig, now: datetime, progress: Callable[[int], None] | None = None,
                 ) -> tuple[Profiles, sp.csr_matrix]:
    """Profiles of ``users`` ((user id, config) pairs) from their ``signals``, in one pass, and
    the users x papers matrix of pulls they were built from; with an LSA space (``models.space``),
    each reader with enough signals gets their own classifier (see own_classifier)."""
    model = models.text
    rows, cols, values, weights, interests, starred = [], [], [], [], [], []
    for row, (uid, user) in enumerate(users):
        pulls: dict[str, float] = {}
        for signal in signals.get(uid, []):
            pulls[signal.paper_id] = pulls.get(signal.paper_id, 0.0) + signal_weight(signal, ranking, now)
        pulls = {p: w for p, w in pulls.items() if p in model.index and w != 0}
        for paper, weight in pulls.items():
            rows.append(row)
            cols.append(model.index[paper])
            values.append(weight)
        weights.append(pulls)
        stars = {s.paper_id for s in signals.get(uid, []) if s.kind == "star"}
        starred.append(stars)
        interests.append(_profile_interests(user, len(stars), ranking))
    pull = sp.csr_matrix((values, (rows, cols)), shape=(len(users), len(model.paper_ids)))
    matrix, collab_rows = profile_rows(model, models.collab, pull, interests, ranking, models.space, progress)
    return Profiles([uid for uid, _ in users], matrix, collab_rows, weights, interests, starred), pull


def _profile_interests(user: UserConfig, stars: int, ranking: RankingConfig) -> tuple[str, ...]:
    return user.interests if stars < FEW_STARS and ranking.interests_weight > 0 else ()


def cache_key(text_stamp: str | None, collab_stamp: str | None, lsa_stamp: str | None,
              ranking: RankingConfig) -> str | None:
    """The key of profiles cached for the models stored under these stamps (the LSA space's
    when readers get their own classifiers) and these settings; None when profiles are not
    cached (no text model, or stars that age change them with time)."""
    if text_stamp is None or ranking.star_half_life_days > 0:
        return None
    parts = [CACHE_FORMAT, text_stamp, collab_stamp, lsa_stamp, repr(ranking)]
    return hashlib.sha1(json.dumps(parts).encode(), usedforsecurity=False).hexdigest()


def interests_fingerprint(interests: tuple[str, ...]) -> int:
    return int.from_bytes(hashlib.sha1(json.dumps(list(interests)).encode(), usedforsecurity=False).digest()[:8], "little", signed=True)


def for_cache(built: Profiles, pulls: sp.csr_matrix, model: TextModel, users: Sequence[tuple[int, UserConfig]],
              generations: dict[int, int]) -> CachedProfiles | None:
    """``built`` as the cache keeps it, each row with the signal generation it was built from;
    None when a star is on a paper the model does not know yet (nothing to cache)."""
    index, star_rows, star_cols = model.index, [], []
    for row, stars in enumerate(built.starred):
        if any(p not in index for p in stars):
            return None
        star_rows += [row] * len(stars)
        star_cols += [index[p] for p in stars]
    return CachedProfiles(
        user_ids=np.array([uid for uid, _ in users], dtype=np.int64),
        generations=np.array([generations.get(uid, 0) for uid, _ in users], dtype=np.int64),
        interests=np.array([interests_fingerprint(user.interests) for _, user in users], dtype=np.int64),
        matrix=built.matrix, dense=built.dense, pulls=pulls,
        stars=sp.csr_matrix((np.ones(len(star_cols), dtype=np.int8), (star_rows, star_cols)), shape=pulls.shape))


@dataclass
class Reuse:
    """What the cache gives for a list of users: the rows it still holds (``reused``), the
    users to rebuild (``stale``), and each user's place among the reused rows then the rebuilt."""

    reused: Profiles
    stale: list[tuple[int, UserConfig]]
    at: list[int]

    def joined(self, rebuilt: Profiles) -> Profiles:
        def join(a: list, b: list) -> list:
            both = a + b
            return [both[k] for k in self.at]

        reused = self.reused
        return Profiles(join(reused.user_ids, rebuilt.user_ids),
                        sp.vstack([reused.matrix, rebuilt.matrix], format="csr")[self.at],
                        None if reused.dense is None else np.concatenate([reused.dense, rebuilt.dense])[self.at],
                        join(reused.weights, rebuilt.weights), join(reused.interests, rebuilt.interests),
                        join(reused.starred, rebuilt.starred))


def reuse(cached: CachedProfiles, generations: dict[int, int], model: TextModel,
          users: Sequence[tuple[int, UserConfig]], ranking: RankingConfig) -> Reuse:
    """The cached rows of the users whose signals and interests have not changed since they
    were built, and who must be rebuilt."""
    position = {uid: i for i, uid in enumerate(cached.user_ids.tolist())}
    taken: list[tuple[int, UserConfig]] = []
    stale: list[tuple[int, UserConfig]] = []
    order: list[int] = []  # each user's row among the taken rows, or -1 - its place among the stale
    for uid, user in users:
        i = position.get(uid)
        if (i is not None and cached.generations[i] == generations.get(uid, 0)
                and cached.interests[i] == interests_fingerprint(user.interests)):
            order.append(len(taken))
            taken.append((i, user))
        else:
            order.append(-1 - len(stale))
            stale.append((uid, user))
    return Reuse(_cached_rows(cached, model, taken, ranking), stale,
                 [o if o >= 0 else len(taken) - 1 - o for o in order])


def _cached_rows(cached: CachedProfiles, model: TextModel, taken: list[tuple[int, UserConfig]],
                 ranking: RankingConfig) -> Profiles:
    rows = np.array([i for i, _ in taken], dtype=np.int64)
    pulls, stars, paper_ids = cached.pulls[rows], cached.stars[rows], model.paper_ids
    weights, starred, interests = [], [], []
    for r, (_, user) in enumerate(taken):
        start, end = pulls.indptr[r], pulls.indptr[r + 1]
        weights.append(dict(zip([paper_ids[c] for c in pulls.indices[start:end].tolist()],
                                pulls.data[start:end].tolist(), strict=True)))
        starred.append({paper_ids[c] for c in stars.indices[stars.indptr[r]:stars.indptr[r + 1]].tolist()})
        interests.append(_profile_interests(user, len(starred[-1]), ranking))
    return Profiles(cached.user_ids[rows].tolist(), cached.matrix[rows],
                    None if cached.dense is None else cached.dense[rows], weights, interests, starred)


def profile_rows(model: TextModel, collab: CollabModel | None, pull: sp.csr_matrix,
                 interests: list[tuple[str, ...]], ranking: RankingConfig, space: LsaSpace | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Unit profile rows in term space (and in reader-factor space) from a users x papers matrix
    of pulls: sparse products over chunks of users, each profile cut to its ``profile_terms``
    strongest terms (memory stays bounded for any number of users). With an LSA ``space``, a
    reader's own classifier replaces the sum where they have enough signals; beside reader
    factors, the reader's own model over the space (``reader_model``) follows their factors, and
    a reader's terms are weighed by their term classifier (``term_ridge``) where the space has its
    basis and no ``interests`` keywords join their profile."""
    parts = []
    for start in range(0, pull.shape[0], PROFILE_CHUNK):
        part = (pull[start:start + PROFILE_CHUNK] @ model.matrix).tocsr()
        if any(interests[start:start + PROFILE_CHUNK]):
            part = (part + ranking.interests_weight * _interest_rows(model, interests[start:start + PROFILE_CHUNK])).tocsr()
        # float32 from here: a profile's weights need no more, and 100k profiles fit in half the memory.
        parts.append(unit_rows(_strongest(part, ranking.profile_terms)).astype(np.float32))
    matrix = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, model.matrix.shape[1]), dtype=np.float32)
    matrix.eliminate_zeros()
    if space is not None and collab is None:
        # A dense part for every reader (zero rows without a classifier): chunks built apart
        # (cached and rebuilt rows) join whatever their readers have.
        terms, dense, fitted = own_classifier.classifier_rows(model, space, pull, ranking, progress)
        if fitted.any():
            matrix = (sp.diags((~fitted).astype(np.float32)) @ matrix + terms).tocsr().astype(np.float32)
            matrix.eliminate_zeros()
        return matrix, dense
    collab_rows = None
    if collab is not None and space is not None and space.terms is not None and ranking.term_ridge > 0:
        wanted = np.array([not words for words in interests], dtype=bool)
        data, _ = term_ridge.reweighed(space.terms, model.matrix, pull, matrix, ranking.term_ridge, wanted)
        matrix = sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)
        matrix.eliminate_zeros()
    if collab is not None:
        # float32 pulls: against the float32 factors, a float64 product would first copy them all.
        collab_rows = unit_rows(pull.astype(collab.combined.dtype) @ collab.combined).astype(np.float32)
        if space is not None and space.basis is not None:
            own, _ = reader_model.weights(space.coordinates, space.basis, pull, collab_rows,
                                          ranking.reader_model_weight / ranking.collaborative_weight)
            # Ranking weighs the whole dense part by collaborative_weight (> 0 with a community
            # model): scaled so that the reader model's part weighs reader_model_weight.
            collab_rows = np.hstack([collab_rows, (ranking.reader_model_weight / ranking.collaborative_weight) * own])
    return matrix, collab_rows


def _strongest(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row cut to its ``keep`` largest-magnitude entries."""
    counts = np.diff(matrix.indptr)
    if keep <= 0 or counts.max(initial=0) <= keep:
        return matrix
    rows, cols, data = [], [], []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        row_cols, row_data = matrix.indices[start:end], matrix.data[start:end]
        if end - start > keep:
            top = np.argpartition(-np.abs(row_data), keep - 1)[:keep]
            row_cols, row_data = row_cols[top], row_data[top]
        rows.append(np.full(len(row_cols), r))
        cols.append(row_cols)
        data.append(row_data)
    return sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape)


def _interest_rows(model: TextModel, interests: list[tuple[str, ...]]) -> sp.csr_matrix:
    unique = sorted({words for words in interests if words})
    vectors = {words: model.vectors(list(words), [""] * len(words)).sum(axis=0) for words in unique}
    rows = [sp.csr_matrix(vectors[w]) if w else sp.csr_matrix((1, model.matrix.shape[1])) for w in interests]
    return sp.vstack(rows).tocsr()


def changed_rows(model: TextModel, profiles: Profiles, users: Sequence[tuple[int, UserConfig]],
                 signals: dict[int, list[Signal]], ranking: RankingConfig,
                 stored: dict[int, tuple[str, int]]) -> list[tuple[int, int, str, dict[str, float], list[list]]]:
    """The term-space profiles whose signals or model changed since the versions ``stored``,
    as the store keeps them: (user id, model version, signal version, {term: weight}, pulls)."""
    changed = []
    for row, (uid, user) in enumerate(users):
        version = signal_version(signals.get(uid, []), user, ranking)
        if stored.get(uid) == (version, model.version):
            continue
        start, end = profiles.matrix.indptr[row], profiles.matrix.indptr[row + 1]
        cols, data = profiles.matrix.indices[start:end], profiles.matrix.data[start:end]
        if len(cols) > PROFILE_TERMS:
            keep = np.argsort(-np.abs(data), kind="stable")[:PROFILE_TERMS]
            cols, data = cols[keep], data[keep]
        terms = {str(model.shown_terms[c]): round(float(v), 6) for c, v in sorted(zip(cols, data, strict=True))}
        sources = [[p, round(w, 6)] for p, w in sorted(profiles.weights[row].items(), key=lambda x: (-abs(x[1]), x[0]))]
        changed.append((uid, model.version, version, terms, sources))
    return changed
