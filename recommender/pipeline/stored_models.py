"""Models and profiles kept in the store: loaded when the cached ones still fit the corpus, the
stars and the settings, else fit (or built) by the model stage and saved. The model stage
computes from arrays and records; this is where it meets the database."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from recommender.base.config import Config, PersonalMode, RankingConfig, UserConfig
from recommender.model import own_classifier, reader_factors, reader_model, tfidf, written_terms
from recommender.model.own_classifier import LsaSpace
from recommender.model.profiles import (
    CachedProfiles,
    Models,
    Profile,
    Profiles,
    changed_rows,
    for_cache,
    from_signals,
    reuse,
)
from recommender.model.profiles import cache_key as profiles_key
from recommender.model.reader_factors import CollabModel
from recommender.model.tfidf import TextModel
from recommender.model.written_terms import BatchForms
from recommender.store import Store
from recommender.store.readers import StarTotals

log = logging.getLogger(__name__)
NEAR_FORMAT = 1  # part of the near groups' cache key
OnReader = Callable[[int, int], None]  # (readers fitted, of how many): readers' own classifiers
REFIT_CHUNK = 2_000  # readers rebuilt at a time without a profiles cache: memory flat in their number
READ_BATCH_MAX = 10_000  # papers: a larger newest batch (a backfill) has its picks' texts read when explained


@dataclass(frozen=True)
class Ranking:
    """What every reader's ranking in one pass reads: the install's config and store, the
    fitted models, and the time it is."""

    config: Config
    store: Store
    models: Models
    now: datetime
    on_reader: OnReader | None = None  # follows readers' own classifiers fit while ranking (stale after a crash)



def text_model(store: Store, ranking: RankingConfig) -> TextModel:
    """The TF-IDF model of the current corpus, fitting (and caching) it when missing."""
    version = store.corpus_version()
    key = tfidf.cache_key(version, ranking)
    model = store.load_model("tfidf", key)
    if isinstance(model, TextModel):
        return model
    ids, titles, abstracts = store.paper_texts()
    log.info("fitting TF-IDF model on %d papers (corpus version %d)", len(ids), version)
    model = tfidf.fit(ids, titles, abstracts, ranking, version)
    store.save_model("tfidf", key, model)
    return model


def batch_forms(store: Store, model: TextModel, ranking: RankingConfig) -> BatchForms | None:
    """How the newest batch's papers write their terms, as a refit read them for this text
    model (None when none did)."""
    found = store.load_model("written", _forms_key(model, ranking))
    return found if isinstance(found, BatchForms) else None


def with_batch_forms(store: Store, models: Models, ranking: RankingConfig) -> Models:
    """``models`` with the newest batch's written forms (``written_terms.read_batch``), read and
    stored now when missing and of use: some reader has stars to explain picks by, and the
    batch is at most ``READ_BATCH_MAX`` papers."""
    if models.written is not None or store.star_totals(recorded=True).readers == 0:
        return models
    papers = store.batch_papers(store.latest_run_batch_ids())
    if not papers or len(papers) > READ_BATCH_MAX:
        return models
    written = written_terms.read_batch(models.text, papers)
    store.save_model("written", _forms_key(models.text, ranking), written)
    log.info("read how the newest batch's %d papers write their terms", len(written.paper_ids))
    return replace(models, written=written)


def _forms_key(model: TextModel, ranking: RankingConfig) -> str:
    return written_terms.cache_key(tfidf.cache_key(model.version, ranking))


def community_model(store: Store, model: TextModel, ranking: RankingConfig, totals: StarTotals) -> CollabModel | None:
    """The reader factors of everyone's stars (``totals``: how many, of how many readers), or
    None when the community takes no part."""
    key = reader_factors.cache_key(model, ranking, totals.stars)
    cached = store.load_model("collab", key)
    if cached is not None:
        return cached if isinstance(cached, CollabModel) else None
    # Every star is read only for a fit: where the readers' count rules the community out, that
    # read alone held about 190 bytes a star (190 MB of a refit at 100,000 readers of 10 stars).
    used = reader_factors.uses_community(ranking, totals.readers)
    fitted = reader_factors.fit(model, store.interactions(), ranking) if used else None
    # "None" is cached too (as a marker, since a missing model also loads as None): else every
    # command of a small install would fit again, and write the row anew.
    store.save_model("collab", key, fitted if fitted is not None else reader_factors.NO_MODEL)
    return fitted


def lsa_space(store: Store, model: TextModel, ranking: RankingConfig, community: bool,
              readers: int) -> LsaSpace | None:
    """The dense features of the current corpus when readers get models of their own (``readers``:
    how many have stars): their own classifiers without the community, reader models beside the
    reader factors; else None."""
    if community:
        if ranking.reader_model_weight <= 0:
            return None
    else:
        if ranking.personal == PersonalMode.OFF:
            return None
        if not readers or not own_classifier.used(ranking, community, readers):  # no reader to fit one for
            return None
    key = own_classifier.cache_key(model, ranking, community)
    cached = store.load_model("lsa", key)
    if isinstance(cached, LsaSpace):
        return cached
    space = own_classifier.fit_space(model, ranking, community)
    if space is not None:
        store.save_model("lsa", key, space)
    return space


def with_near_groups(store: Store, model: TextModel, collab: CollabModel | None, space: LsaSpace | None,
                     ranking: RankingConfig) -> LsaSpace | None:
    """``space`` with its reader models' near groups (``reader_model.NearGroups``), fit (and
    cached) when missing: with the community part, where most papers have an abstract."""
    if collab is None or space is None or space.basis is None or ranking.reader_model_near_groups <= 0:
        return space
    stamps = f"{store.model_stamp('lsa')}:{store.model_stamp('collab')}:{ranking.reader_model_near_groups}"
    key = f"{NEAR_FORMAT}:{hashlib.sha1(stamps.encode(), usedforsecurity=False).hexdigest()}"  # (keys: 128 characters)
    near = store.load_model("near", key)
    if not isinstance(near, reader_model.NearGroups):
        older = _older_rows(store, model)
        fitted = None if older is None else reader_model.fit_near(space.coordinates, collab.predicted, older,
                                                                   space.basis, ranking.reader_model_near_groups)
        # None is kept as no groups: the next command neither counts the abstracts again nor refits.
        near = fitted or reader_model.no_near_groups(space.coordinates.shape[1], collab.predicted.shape[1])
        store.save_model("near", key, near)
    return replace(space, basis=replace(space.basis, near=near)) if len(near.sizes) else space


def _older_rows(store: Store, model: TextModel) -> np.ndarray | None:
    """The model rows of the papers before the latest ingest run (those readers have seen),
    when most papers have an abstract; else None. On titles alone, the papers nearest a reader
    that they did not star are as often papers they will save: pushing them down as harder
    negatives cost CiteULike-a's titles recall, and gained it on CiteULike-t's abstracts
    (bench/RESULTS.md)."""
    if store.abstract_share() <= 0.5:
        return None
    older = np.ones(len(model.paper_ids), dtype=bool)
    older[[model.index[p] for p in store.batch_entries(store.latest_run_batch_ids()) if p in model.index]] = False
    return np.flatnonzero(older)


def profiles_cache_key(store: Store, ranking: RankingConfig, personal_used: bool = False) -> str | None:
    """The key of the profiles cached for the models ``store`` holds and these settings."""
    return profiles_key(store.model_stamp("tfidf"), store.model_stamp("collab"),
                        store.model_stamp("lsa") if personal_used else None, ranking)


def reader_progress(models: Models, on_reader: OnReader | None, total: Callable[[], int]) -> Callable[[int], None] | None:
    """What a profile build tells ``on_reader(done, total)`` as readers' own classifiers are fit
    (None when the models fit none)."""
    if on_reader is None or models.space is None or models.collab is not None:
        return None
    done, count = 0, total()

    def progress(fitted: int) -> None:
        nonlocal done
        done += fitted
        on_reader(done, count)
    return progress


def build_profiles(store: Store, models: Models, users: Sequence[tuple[int, UserConfig]], ranking: RankingConfig,
                   now: datetime, persist: bool = True, on_reader: OnReader | None = None) -> Profiles:
    """Profiles of ``users`` ((user id, config) pairs) from their signals; with ``persist``,
    the term-space profiles whose signals or model changed are stored."""
    progress = reader_progress(models, on_reader, lambda: len(users))
    return _built_with_pulls(store, models, users, ranking, now, persist, progress)[0]


def _built_with_pulls(store: Store, models: Models, users: Sequence[tuple[int, UserConfig]], ranking: RankingConfig,
                      now: datetime, persist: bool, progress: Callable[[int], None] | None = None,
                      generations: dict[int, int] | None = None) -> tuple[Profiles, sp.csr_matrix]:
    """``generations``: the users' signal generations when the caller read them already."""
    model = models.text
    user_ids = [uid for uid, _ in users]
    if generations is None:  # read before the signals (a change between: stale)
        generations = store.signal_counts(user_ids) if persist else {}
    # The times count only for ageing stars and for the version a stored profile keeps.
    signals = store.signals(user_ids, times=persist or ranking.star_half_life_days > 0)
    built, pulls = from_signals(models, users, signals, ranking, now, progress)
    if persist:
        changed = changed_rows(model, built, users, signals, ranking, store.profile_versions(user_ids))
        if changed:
            store.save_profiles(changed, generations)
    return built, pulls


def rebuild_changed_profiles(store: Store, models: Models, users: Sequence[tuple[int, UserConfig]],
                             ranking: RankingConfig, now: datetime, progress: Callable[[int], None] | None = None,
                             chunk: int = REFIT_CHUNK) -> int:
    """The refit without a profiles cache (PostgreSQL): rebuild and store the profiles of the
    readers whose stars or clicks changed since their stored profile was built (the triggers'
    signal generations say who, without reading any signal), ``chunk`` readers at a time, so
    memory stays flat in the number of readers. A reader whose signals did not change keeps
    the profile it has: ranking builds profiles from the signals anyway. Returns how many
    were rebuilt."""
    rebuilt = 0
    for start in range(0, len(users), chunk):
        part = users[start:start + chunk]
        stale, generations = store.stale_profiles([uid for uid, _ in part])
        wanted = set(stale)
        rebuilt += rebuild_profiles(store, models, [(uid, user) for uid, user in part if uid in wanted], generations,
                                    ranking, now, progress)
    return rebuilt


def rebuild_profiles(store: Store, models: Models, chosen: Sequence[tuple[int, UserConfig]],
                     generations: dict[int, int], ranking: RankingConfig, now: datetime,
                     progress: Callable[[int], None] | None = None) -> int:
    """Rebuild and store these readers' profiles from their signals (``generations``: what
    ``stale_profiles`` counted for them); returns how many."""
    if not chosen:
        return 0
    signals = store.signals([uid for uid, _ in chosen], times=True)
    built, _ = from_signals(models, chosen, signals, ranking, now, progress)
    store.save_profiles(changed_rows(models.text, built, chosen, signals, ranking, {}), generations)
    return len(chosen)


def build_and_cache_profiles(store: Store, models: Models, users: Sequence[tuple[int, UserConfig]],
                             ranking: RankingConfig, now: datetime,
                             progress: Callable[[int], None] | None = None) -> Profiles:
    """``build_profiles`` (persisting), and the result cached beside a SQLite database;
    ``progress`` is told of each reader whose own classifier was considered."""
    # Read before the signals: a change in between leaves a row that is merely stale.
    generations = store.signal_generations([uid for uid, _ in users])
    built, pulls = _built_with_pulls(store, models, users, ranking, now, True, progress, generations)
    key = profiles_cache_key(store, ranking, models.space is not None)
    if generations is None or key is None:
        return built
    cached = for_cache(built, pulls, models.text, users, generations)
    if cached is not None:
        store.save_model("profiles", key, cached)
    return built


def cached_or_built_profiles(store: Store, models: Models, users: Sequence[tuple[int, UserConfig]],
                             ranking: RankingConfig, now: datetime, persist: bool = True,
                             on_reader: OnReader | None = None) -> Profiles:
    """``build_profiles``, taking from the cache the profiles whose user's signals and interests
    have not changed since it was built (what that costs: one read of the users' generations)."""
    key = profiles_cache_key(store, ranking, models.space is not None) if users else None
    cached = store.load_model("profiles", key) if key else None
    generations = store.signal_generations([uid for uid, _ in users]) if isinstance(cached, CachedProfiles) else None
    if generations is None or not isinstance(cached, CachedProfiles):
        return build_profiles(store, models, users, ranking, now, persist, on_reader)
    found = reuse(cached, generations, models.text, users, ranking)
    if not found.stale:
        return found.reused
    return found.joined(build_profiles(store, models, found.stale, ranking, now, persist, on_reader))


def current_profile(store: Store, models: Models, user_id: int, user: UserConfig, ranking: RankingConfig,
                    now: datetime) -> Profile:
    """One user's profile (built from the signal log, persisted when it changed)."""
    return build_profiles(store, models, [(user_id, user)], ranking, now).profile(0)
