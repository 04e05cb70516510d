"""Score candidate papers against a profile and pick the top ones. Pure and deterministic:
ties fall back to source order, then paper id."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from recommender.domain import Explanation, Paper, Recommendation, SharedTerm
from recommender.profiles import Profile
from recommender.textmodel import TextModel


@dataclass(frozen=True)
class Choice:
    """What one user wants from a ranking run."""

    user: str
    limit: int
    min_score: float | None = None
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    why_terms: int = 3


def _keyword_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def _followed(paper: Paper, authors: tuple[str, ...]) -> tuple[str, ...]:
    wanted = {a.casefold() for a in authors}
    return tuple(a for a in paper.authors if a.casefold() in wanted)


def rank(model: TextModel, profile: Profile, candidates: list[Paper], skip: set[str], choice: Choice,
         titles: dict[str, str]) -> list[Recommendation]:
    """Top ``choice.limit`` candidates, best first. ``skip`` holds starred and already-sent ids;
    ``titles`` maps the profile's papers to their titles for the explanation."""
    excluded = _keyword_pattern(choice.exclude)
    pool = [p for p in candidates if p.id not in skip
            and not (excluded and excluded.search(f"{p.title} {p.abstract}"))]
    if not pool:
        return []
    if profile.empty:
        return [Recommendation(choice.user, paper, 0.0, i + 1, Explanation(personalized=False))
                for i, paper in enumerate(pool[:choice.limit])]
    rows = model.rows([p.id for p in pool])
    scores = np.asarray(rows @ profile.vector).ravel()
    followed = [_followed(p, choice.authors) for p in pool]
    order = sorted(range(len(pool)), key=lambda i: (not followed[i], -round(float(scores[i]), 12), i, pool[i].id))
    picked = [i for i in order if followed[i] or choice.min_score is None or scores[i] >= choice.min_score]
    picked = picked[:choice.limit]
    interests = _keyword_pattern(profile.interests)
    return [
        Recommendation(
            choice.user, pool[i], float(scores[i]), rank + 1,
            explain(model, profile, pool[i], rows[i], titles, choice.why_terms, followed[i], interests),
        )
        for rank, i in enumerate(picked)
    ]


def explain(model: TextModel, profile: Profile, paper: Paper, row: object, titles: dict[str, str],
            n_terms: int, followed: tuple[str, ...], interests: re.Pattern[str] | None) -> Explanation:
    """The starred papers nearest to ``paper`` and the terms it shares with the nearest one."""
    nearest: list[tuple[str, str, float]] = []
    terms: list[SharedTerm] = []
    known = [p for p in profile.positives if p in model.index]
    if known:
        sims = np.asarray((model.rows(known) @ row.T).todense()).ravel()  # type: ignore[attr-defined]
        best = sorted(range(len(known)), key=lambda i: (-sims[i], known[i]))[:2]
        nearest = [(known[i], titles.get(known[i], known[i]), float(sims[i])) for i in best if sims[i] > 0]
        if nearest:
            overlap = model.rows([nearest[0][0]]).multiply(row).tocoo()
            terms = _top_terms(model, overlap.col, overlap.data, n_terms)
    if not terms:
        coo = row.tocoo()  # type: ignore[attr-defined]
        terms = _top_terms(model, coo.col, coo.data * profile.vector[coo.col], n_terms)
    matched = tuple(sorted({m.group(0).lower() for m in interests.finditer(f"{paper.title} {paper.abstract}")})) \
        if interests else ()
    return Explanation(personalized=True, nearest=tuple(nearest), terms=tuple(terms),
                       followed_authors=followed, matched_interests=matched)


def _top_terms(model: TextModel, columns: np.ndarray, values: np.ndarray, n: int) -> list[SharedTerm]:
    order = sorted((i for i in range(len(columns)) if values[i] > 0),
                   key=lambda i: (-values[i], str(model.terms[columns[i]])))[:n]
    return [SharedTerm(str(model.terms[columns[i]]), float(values[i])) for i in order]
