"""`recommender explain`: the full score breakdown of one paper for one reader, ranked as a
digest ranks it (among the latest digest's papers, in the topic where it ranks best)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import recommender.pipeline as pipeline
from recommender.base.config import Config, UserConfig
from recommender.base.errors import NotFoundError
from recommender.base.text import shown
from recommender.model import profiles
from recommender.model.ranking import Choice, rank_many
from recommender.pipeline.stored_models import Models, build_profiles
from recommender.pipeline.topic_ranking import (
    choice_for,
    section_profiles,
    sections_of,
)
from recommender.store import Store


def explain(config: Config, store: Store, user: UserConfig, paper_id: str,
            now: datetime | None = None) -> dict[str, Any]:
    """The full score breakdown of one paper for one user (for `recommender explain`)."""
    now = now or datetime.now(UTC)
    paper = store.paper(paper_id)
    models = pipeline.load_models(store, config)
    user_id = store.user_id(user.email)
    topic = ""
    if user.topics:  # the topic the paper belongs to, as a digest assigns it
        found, built, affinity = section_profiles(pipeline.Ranking(config, store, models, now), user, user_id)
        if not found:
            raise NotFoundError(f"{user.email}: no topic to explain with")
        # Among the latest digest's papers: where its affinity ranks highest (topics.assigned).
        pool = [p for p in store.batch_papers(store.latest_run_batch_ids()) if p.id != paper.id] + [paper]
        best = sections_of(models, affinity, pool)[-1]
        topic, user = found[best].name, found[best].user
        built = profiles.Profiles([built.user_ids[best]], built.matrix[best], None if built.dense is None
                                  else built.dense[best:best + 1], [built.weights[best]], [built.interests[best]],
                                  [built.starred[best]])
    else:
        built = build_profiles(store, models, [(user_id, user)], config.ranking, now)
    choice = choice_for(config, user, 1, models)
    plain = Choice(user=choice.user, limit=1, why_terms=choice.why_terms, collaborative_weight=choice.collaborative_weight,
                   interest_boost=choice.interest_boost, interests=choice.interests, authors=choice.authors)
    pick = rank_many(models, built, [paper], [set()], [plain], store.titles_and_abstracts)[0][0]
    why = pick.explanation
    content = float((built.matrix[0] @ models.text.rows([paper.id]).T).toarray().ravel()[0])
    topics = 0.0  # the dense part of the reader's own classifier or model (LSA topics and word vectors)
    if models.space is not None and built.dense is not None:
        own = built.dense[0, built.dense.shape[1] - models.space.coordinates.shape[1]:]
        topics = choice.collaborative_weight * float(own @ models.space.coordinates[models.text.index[paper.id]])
    notes = []
    if paper.id in store.starred_ids(user_id):
        notes.append("you starred this paper, so it is never recommended to you")
    if paper.id in store.sent_map([user_id]).get(user_id, set()):
        notes.append("it was already in one of your digests")
    if choice.exclude and any(w.lower() in f"{paper.title} {paper.abstract}".lower() for w in choice.exclude):
        notes.append("an `exclude` keyword drops it")
    if user.min_score is not None and pick.score < user.min_score:
        notes.append(f"below your min_score {user.min_score}")
    if not why.personalized:
        notes.append("no profile yet: star papers to personalize")
    return {
        "user": user.email, "paper_id": paper.id, "title": paper.display.title, "score": _part(pick.score),
        "match": _match_in_latest(store, models, built, plain, paper.id, user_id) if why.personalized else None,
        "content": _part(content), "collaborative": _part(why.collaborative), "topics": _part(topics),
        "interests": _part(pick.score - content - topics - why.collaborative) if why.personalized else 0.0,
        "nearest": [{"paper_id": p, "title": shown(t), "similarity": round(s, 4),
                     "kind": "liked" if p in why.liked else "starred"} for p, t, s in why.nearest],
        "terms": [{"term": t.term, "contribution": round(t.contribution, 4)} for t in why.terms],
        "followed_authors": list(why.followed_authors), "matched_interests": list(why.matched_interests),
        "why": why.sentence(), "notes": notes, **({"topic": topic} if topic else {}),
    }


def _match_in_latest(store: Store, models: Models, built: profiles.Profiles, choice: Choice, paper_id: str,
                     user_id: int) -> int | None:
    """The paper's match as `recommend` shows it, among the latest batch's candidates; None when
    it is no candidate there (another batch's paper, starred, or already sent)."""
    candidates = store.batch_papers(store.latest_run_batch_ids())
    if paper_id not in {c.id for c in candidates}:
        return None
    skips = set(store.starred_ids(user_id)) | store.sent_map([user_id]).get(user_id, set())
    ranked = rank_many(models, built, candidates, [skips], [replace(choice, limit=len(candidates))],
                       store.titles_and_abstracts)[0]
    return next((r.match for r in ranked if r.paper.id == paper_id), None)


def _part(value: float) -> float:
    """A part of a score as `explain` shows it: 6 decimals, and a part that rounds to zero from
    below is 0, not -0 (``+ 0.0`` turns -0.0 into 0.0)."""
    return round(value, 6) + 0.0
