"""Find the paper a person means by a typed title: the exact (normalised) title first,
then the single clearly-best fuzzy match; several close matches ask for an id."""

from __future__ import annotations

from recommender.base.domain import Paper
from recommender.base.errors import AmbiguousError, NotFoundError
from recommender.base.text import title_key
from recommender.store import Store

GOOD_MATCH = 85.0
CLEAR_MARGIN = 5.0


def paper_by_title(store: Store, typed: str) -> Paper:
    key = title_key(typed)
    if not key:
        raise NotFoundError("give a title to look for")
    exact = store.find_by_title_key(key)
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise AmbiguousError(_several(typed, exact))
    choices = {pid: title_key(title) for pid, title in store.titles().items() if title}
    from rapidfuzz import fuzz, process  # here: only a title that matches no paper exactly needs it

    found = process.extract(key, choices, scorer=fuzz.WRatio, limit=5)
    if not found or found[0][1] < GOOD_MATCH:
        raise NotFoundError(f"no paper titled {typed!r} (try `recommender papers search WORDS`)")
    best_score = found[0][1]
    close = [pid for _, score, pid in found if score >= best_score - CLEAR_MARGIN]
    if len(close) == 1:
        return store.paper(close[0])
    raise AmbiguousError(_several(typed, store.papers(close)))


def _several(typed: str, papers: list[Paper]) -> str:
    listed = "; ".join(f"{p.id} \"{p.title}\"" for p in papers[:5])
    return f"several papers match {typed!r}: {listed}. Star by id instead"
