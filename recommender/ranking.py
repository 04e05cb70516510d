"""Score candidate papers for many users at once and pick each one's top papers. Pure and
deterministic: ties fall back to source order, then paper id.

score = cosine(profile, paper)                       content: TF-IDF terms
      + collaborative_weight * cosine(user, paper)   what readers with these stars saved
      + interest_boost if an `interests` keyword occurs in the paper
Followed authors' papers come first whatever their score. Users are scored in chunks with
sparse/dense matrix products; explanations are computed only for the papers shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommender.collab import CollabModel
from recommender.domain import Explanation, Paper, Recommendation, SharedTerm
from recommender.profiles import Profiles
from recommender.scoring import PoolScorer
from recommender.textmodel import TextModel

CHUNK = 512
PARALLEL_CHUNKS = 2
FOLLOWED_BONUS = 1e6  # sorts a followed author's paper first; never shown as a score


@dataclass(frozen=True)
class Choice:
    """What one user wants from a ranking run."""

    user: str
    limit: int
    min_score: float | None = None
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    why_terms: int = 3
    collaborative_weight: float = 0.0
    interest_boost: float = 0.0
    interests: tuple[str, ...] = ()


def keyword_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def followed(paper: Paper, authors: tuple[str, ...]) -> tuple[str, ...]:
    wanted = {a.casefold() for a in authors}
    return tuple(a for a in paper.authors if a.casefold() in wanted)


class _Matches:
    """Which candidates match a keyword list (exclude, interests), computed once per distinct list."""

    def __init__(self, pool: Sequence[Paper]):
        self.texts = [f"{p.title} {p.abstract}" for p in pool]
        self.cache: dict[tuple[str, ...], np.ndarray] = {}

    def __call__(self, words: tuple[str, ...]) -> np.ndarray:
        if words not in self.cache:
            pattern = keyword_pattern(words)
            self.cache[words] = np.array([bool(pattern and pattern.search(t)) for t in self.texts], dtype=bool)
        return self.cache[words]


def top_candidates(profiles: Profiles, scorer: PoolScorer, skips: Sequence[set[str]], choices: Sequence[Choice],
                   position: dict[str, int], matches: _Matches, pool: list[Paper], start: int, end: int,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Users ``start:end`` scored against every candidate at once: returns (picked candidate
    indices, their scores, their collaborative parts, how many picks each row has), best first,
    ties in source order. Cold-start rows (no profile) get the candidates in source order."""
    n = scorer.size
    users = range(start, end)
    weights = np.array([choices[u].collaborative_weight for u in users], dtype=np.float32)
    readers = profiles.collab[start:end] if profiles.collab is not None else None
    total = scorer.scores(profiles.matrix[start:end], readers, weights)
    by_words: dict[tuple[str, ...], list[int]] = {}
    for offset, u in enumerate(users):
        if choices[u].interests and choices[u].interest_boost:
            by_words.setdefault(choices[u].interests, []).append(offset)
    for words, offsets in by_words.items():
        total[offsets] += choices[start + offsets[0]].interest_boost * matches(words)
    cold = np.array([profiles.empty(u) for u in users], dtype=bool)
    total[cold] = -np.arange(n, dtype=total.dtype)  # source order for users without a profile
    # Picking keys: the total itself unless a row needs papers blocked or followed authors lifted
    # (float64 then: a float32 cannot hold FOLLOWED_BONUS plus a score's digits).
    if any(choices[u].authors for u in users):
        keyed = total.astype(np.float64)
    elif any(skips[u] or choices[u].exclude or choices[u].min_score is not None for u in users):
        keyed = total.copy()
    else:
        keyed = total
    blocked_rows, blocked_cols = [], []
    for offset, u in enumerate(users):
        choice = choices[u]
        for paper_id in skips[u]:
            column = position.get(paper_id)
            if column is not None:
                blocked_rows.append(offset)
                blocked_cols.append(column)
        if choice.exclude:
            keyed[offset, matches(choice.exclude)] = -np.inf
        if choice.min_score is not None and not cold[offset]:
            keyed[offset, total[offset] < choice.min_score] = -np.inf
        if choice.authors:
            bonus = np.array([bool(followed(p, choice.authors)) for p in pool])
            keyed[offset, bonus] = np.where(cold[offset], FOLLOWED_BONUS - np.arange(n)[bonus], FOLLOWED_BONUS
                                            + total[offset, bonus])
    keyed[blocked_rows, blocked_cols] = -np.inf
    k = min(n, max(choices[u].limit for u in users))
    if k < n:
        top = np.sort(np.argpartition(-keyed, k - 1, axis=1)[:, :k], axis=1)
    else:
        top = np.tile(np.arange(n), (end - start, 1))
    order = np.argsort(-np.take_along_axis(keyed, top, axis=1), axis=1, kind="stable")
    picked = np.take_along_axis(top, order, axis=1)
    finite = np.isfinite(np.take_along_axis(keyed, picked, axis=1))
    limits = np.array([choices[u].limit for u in users])
    counts = np.minimum(finite.sum(axis=1), limits)
    scores = np.where(cold[:, None], 0.0, np.take_along_axis(total, picked, axis=1))
    return picked, scores, scorer.reader_part(readers, weights, picked), counts


def picks_by_chunk(profiles: Profiles, scorer: PoolScorer, skips: Sequence[set[str]], choices: Sequence[Choice],
                   position: dict[str, int], matches: _Matches, pool: list[Paper],
                   ) -> Iterator[tuple[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """``top_candidates`` of every chunk of users, in order, computed on both cores: one chunk
    per thread, each with single-threaded BLAS (faster than two threads each asking BLAS for
    both cores); the heavy parts (BLAS, the compiled scatter) release the GIL."""
    bounds = [(start, min(start + CHUNK, len(choices))) for start in range(0, len(choices), CHUNK)]

    def pick(chunk: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return top_candidates(profiles, scorer, skips, choices, position, matches, pool, *chunk)

    if len(bounds) == 1:
        yield bounds[0], pick(bounds[0])
        return
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=PARALLEL_CHUNKS) as workers:
        yield from zip(bounds, workers.map(pick, bounds), strict=True)


def rank_many(model: TextModel, collab: CollabModel | None, profiles: Profiles, pool: list[Paper],
              skips: Sequence[set[str]], choices: Sequence[Choice], titles: Callable[[list[str]], dict[str, str]],
              ) -> list[list[Recommendation]]:
    """Each user's top ``choice.limit`` candidates from ``pool`` (in source order), best first.
    ``skips`` holds each user's starred and already-sent ids; ``titles`` looks up titles."""
    if not pool or not choices:
        return [[] for _ in choices]
    position = {p.id: i for i, p in enumerate(pool)}
    rows = model.rows([p.id for p in pool])
    collab_rows = collab.predicted[[collab.index[p.id] for p in pool]] if collab is not None else None
    scorer = PoolScorer(rows, collab_rows if profiles.collab is not None else None)
    matches = _Matches(pool)
    results: list[list[Recommendation]] = []
    for (start, end), (picked, scores, collaborative, counts) in picks_by_chunk(profiles, scorer, skips, choices,
                                                                              position, matches, pool):
        for offset in range(end - start):
            u = start + offset
            choice = choices[u]
            if profiles.empty(u):
                results.append([Recommendation(choice.user, pool[i], 0.0, n + 1,
                                               lambda i=i, c=choice: Explanation(
                                                   personalized=False, followed_authors=followed(pool[i], c.authors)))
                                for n, i in enumerate(picked[offset, :counts[offset]])])
                continue
            explain = _Explainer(model, profiles, u, pool, rows, titles, choice, picked[offset, :counts[offset]])
            results.append([Recommendation(choice.user, pool[i], float(scores[offset, n]), n + 1,
                                           lambda i=int(i), c=float(collaborative[offset, n]), e=explain: e(i, c))
                            for n, i in enumerate(picked[offset, :counts[offset]])])
    return results


class _Explainer:
    """Builds one pick's explanation on demand: the starred papers nearest to it and the
    terms it shares with the nearest one. The per-user work (the starred papers' rows and
    titles, their similarity to every pick) is done once, when the first explanation is asked for."""

    def __init__(self, model: TextModel, profiles: Profiles, u: int, pool: list[Paper], rows: sp.csr_matrix,
                 titles: Callable[[list[str]], dict[str, str]], choice: Choice, picks: Sequence[int]):
        self.model, self.profiles, self.u, self.pool, self.rows = model, profiles, u, pool, rows
        self.titles, self.choice, self.picks = titles, choice, [int(i) for i in picks]
        self.pattern = keyword_pattern(choice.interests)
        self._ready = False

    def _prepare(self) -> None:
        profile = self.profiles.matrix[self.u]
        self.profile_weights = dict(zip(profile.indices.tolist(), profile.data.tolist(), strict=True))
        weights = self.profiles.weights[self.u]
        self.known = sorted((p for p, w in weights.items() if w > 0 and p in self.model.index),
                            key=lambda p: (-weights[p], p))[:200]
        self.known_rows = self.model.rows(self.known) if self.known else None
        self.known_titles = self.titles(self.known[:50])
        self.column = {i: n for n, i in enumerate(self.picks)}
        self.pick_rows = self.rows[self.picks]
        self.sims = (self.known_rows @ self.pick_rows.T).toarray() if self.known_rows is not None else None
        self._ready = True

    def _row(self, matrix: sp.csr_matrix, r: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        return matrix.indices[start:end], matrix.data[start:end]

    def __call__(self, i: int, collaborative: float) -> Explanation:
        if not self._ready:
            self._prepare()
        paper = self.pool[i]
        n = self.column[i]
        cols, data = self._row(self.pick_rows, n)
        nearest: list[tuple[str, str, float]] = []
        terms: list[SharedTerm] = []
        if self.sims is not None:
            sims = self.sims[:, n]
            best = sorted(np.flatnonzero(sims > 0), key=lambda j: (-sims[j], self.known[j]))[:2]
            nearest = [(self.known[j], self.known_titles.get(self.known[j], self.known[j]), float(sims[j]))
                       for j in best]
            if best:
                star_cols, star_data = self._row(self.known_rows, int(best[0]))
                shared, in_star, in_pick = np.intersect1d(star_cols, cols, assume_unique=True, return_indices=True)
                terms = top_terms(self.model, shared, star_data[in_star] * data[in_pick], self.choice.why_terms)
        if not terms:
            terms = top_terms(self.model, cols, data * np.array([self.profile_weights.get(c, 0.0) for c in cols.tolist()]),
                              self.choice.why_terms)
        matched = tuple(sorted({m.group(0).lower() for m in self.pattern.finditer(f"{paper.title} {paper.abstract}")})) \
            if self.pattern else ()
        return Explanation(personalized=True, nearest=tuple(nearest), terms=tuple(terms),
                           followed_authors=followed(paper, self.choice.authors), matched_interests=matched,
                           collaborative=collaborative)


def top_terms(model: TextModel, columns: np.ndarray, values: np.ndarray, n: int) -> list[SharedTerm]:
    order = sorted((i for i in range(len(columns)) if values[i] > 0),
                   key=lambda i: (-values[i], str(model.terms[columns[i]])))[:n]
    return [SharedTerm(str(model.terms[columns[i]]), float(values[i])) for i in order]
