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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.collab import CollabModel
from recommender.domain import Explanation, Paper, Recommendation, SharedTerm
from recommender.profiles import Profile, Profiles
from recommender.textmodel import TextModel

CHUNK = 512
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


def rank_many(model: TextModel, collab: CollabModel | None, profiles: Profiles, pool: list[Paper],
              skips: Sequence[set[str]], choices: Sequence[Choice], titles: Callable[[list[str]], dict[str, str]],
              ) -> list[list[Recommendation]]:
    """Each user's top ``choice.limit`` candidates from ``pool`` (in source order), best first.
    ``skips`` holds each user's starred and already-sent ids; ``titles`` looks up titles."""
    results: list[list[Recommendation]] = []
    if not pool:
        return [[] for _ in choices]
    position = {p.id: i for i, p in enumerate(pool)}
    rows = model.rows([p.id for p in pool])
    collab_rows = collab.predicted[[collab.index[p.id] for p in pool]] if collab is not None else None
    matches = _Matches(pool)
    for start in range(0, len(choices), CHUNK):
        end = min(start + CHUNK, len(choices))
        content = np.asarray((profiles.matrix[start:end] @ rows.T).todense())
        collaborative = np.zeros_like(content)
        if collab_rows is not None and profiles.collab is not None:
            weights = np.array([c.collaborative_weight for c in choices[start:end]])[:, None]
            collaborative = weights * (profiles.collab[start:end] @ collab_rows.T)
        for offset in range(end - start):
            u = start + offset
            results.append(_pick(model, profiles, u, pool, position, rows, content[offset], collaborative[offset],
                                 skips[u], choices[u], matches, titles))
    return results


def _pick(model: TextModel, profiles: Profiles, u: int, pool: list[Paper], position: dict[str, int],
          rows: sp.csr_matrix, content: np.ndarray, collaborative: np.ndarray, skip: set[str], choice: Choice,
          matches: _Matches, titles: Callable[[list[str]], dict[str, str]]) -> list[Recommendation]:
    allowed = np.ones(len(pool), dtype=bool)
    for paper_id in skip:
        if paper_id in position:
            allowed[position[paper_id]] = False
    if choice.exclude:
        allowed &= ~matches(choice.exclude)
    by_followed = np.zeros(len(pool))
    if choice.authors:
        by_followed = np.array([FOLLOWED_BONUS if followed(p, choice.authors) else 0.0 for p in pool])
    if profiles.empty(u):
        order = [i for i in np.lexsort((np.arange(len(pool)), -by_followed)) if allowed[i]][:choice.limit]
        return [Recommendation(choice.user, pool[i], 0.0, n + 1,
                               lambda i=i: Explanation(personalized=False,
                                                       followed_authors=followed(pool[i], choice.authors)))
                for n, i in enumerate(order)]
    boost = choice.interest_boost * matches(choice.interests) if choice.interests and choice.interest_boost else 0.0
    total = content + collaborative + boost
    if choice.min_score is not None:
        allowed &= (total >= choice.min_score) | (by_followed > 0)
    candidates = np.flatnonzero(allowed)
    if len(candidates) == 0:
        return []
    keyed = np.round(total[candidates] + by_followed[candidates], 12)
    if len(candidates) > choice.limit:
        cut = np.argpartition(-keyed, choice.limit - 1)[:choice.limit]
        threshold = keyed[cut].min()
        candidates = candidates[keyed >= threshold]  # keep ties at the cut for a stable order
        keyed = np.round(total[candidates] + by_followed[candidates], 12)
    order = candidates[np.lexsort((candidates, -keyed))][:choice.limit]
    explain = _Explainer(model, profiles, u, pool, rows, titles, choice, matches)
    return [Recommendation(choice.user, pool[i], float(total[i]), n + 1,
                           lambda i=i: explain(int(i), float(collaborative[i])))
            for n, i in enumerate(order)]


class _Explainer:
    """Builds one pick's explanation on demand: the starred papers nearest to it and the
    terms it shares with the nearest one."""

    def __init__(self, model: TextModel, profiles: Profiles, u: int, pool: list[Paper], rows: sp.csr_matrix,
                 titles: Callable[[list[str]], dict[str, str]], choice: Choice, matches: _Matches):
        self.model, self.profiles, self.u, self.pool, self.rows = model, profiles, u, pool, rows
        self.titles, self.choice, self.matches = titles, choice, matches
        self._profile: Profile | None = None
        self._known: list[str] = []
        self._titles: dict[str, str] = {}

    def profile(self) -> Profile:
        if self._profile is None:
            self._profile = self.profiles.profile(self.u)
            self._known = [p for p in self._profile.positives if p in self.model.index][:200]
            self._titles = self.titles(self._known[:50])
        return self._profile

    def __call__(self, i: int, collaborative: float) -> Explanation:
        profile = self.profile()
        row = self.rows[i]
        paper = self.pool[i]
        nearest: list[tuple[str, str, float]] = []
        terms: list[SharedTerm] = []
        if self._known:
            sims = (self.model.rows(self._known) @ row.T).toarray().ravel()
            best = sorted(range(len(self._known)), key=lambda j: (-sims[j], self._known[j]))[:2]
            nearest = [(self._known[j], self._titles.get(self._known[j], self._known[j]), float(sims[j]))
                       for j in best if sims[j] > 0]
        if nearest:
            overlap = self.model.rows([nearest[0][0]]).multiply(row).tocoo()
            terms = top_terms(self.model, overlap.col, overlap.data, self.choice.why_terms)
        if not terms:
            coo = row.tocoo()
            terms = top_terms(self.model, coo.col, coo.data * profile.vector[coo.col], self.choice.why_terms)
        pattern = keyword_pattern(self.choice.interests)
        matched = tuple(sorted({m.group(0).lower() for m in pattern.finditer(f"{paper.title} {paper.abstract}")})) \
            if pattern else ()
        return Explanation(personalized=True, nearest=tuple(nearest), terms=tuple(terms),
                           followed_authors=followed(paper, self.choice.authors), matched_interests=matched,
                           collaborative=collaborative)


def top_terms(model: TextModel, columns: np.ndarray, values: np.ndarray, n: int) -> list[SharedTerm]:
    order = sorted((i for i in range(len(columns)) if values[i] > 0),
                   key=lambda i: (-values[i], str(model.terms[columns[i]])))[:n]
    return [SharedTerm(str(model.terms[columns[i]]), float(values[i])) for i in order]
