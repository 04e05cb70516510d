"""The one place the stages are wired: files -> parsers -> store; store -> model ->
profiles -> ranking. The CLI and the scheduler call these functions and nothing deeper."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from threadpoolctl import threadpool_limits

from recommender.base import parallel
from recommender.base.config import Config, UserConfig
from recommender.base.domain import Paper, ParsedBatch, ReaderIds, ReadHints, Recommendation
from recommender.base.errors import InputError, NotFoundError
from recommender.model import profiles, sparse_loops
from recommender.model.ranking import rank_many
from recommender.pipeline import stored_models, topics
from recommender.pipeline.reader_directory import ReaderDirectory
from recommender.pipeline.stored_models import Models, Ranking
from recommender.pipeline.topic_ranking import (
    choice_for,
    rank_topics,
    section_profiles,
)
from recommender.sources import parse
from recommender.store import IngestResult, Store

log = logging.getLogger(__name__)
Progress = Callable[[int], None]

PARALLEL_USERS = 200  # from this many users on (100 a part), `recommend` and `digest send` use worker processes


@dataclass(frozen=True)
class IngestSummary:
    files: int
    batches: int
    skipped_files: int
    entries: int
    new_papers: int
    duplicates: int
    empty_files: int = 0

    def line(self) -> str:
        skipped = f", {self.skipped_files} already ingested" if self.skipped_files else ""
        skipped += f", {self.empty_files} with nothing new" if self.empty_files else ""
        return (f"ingested {self.files} file(s){skipped}: {self.entries} entries, "
                f"{self.new_papers} new papers, {self.duplicates} duplicates")


@dataclass(frozen=True)
class Wanted:
    """Whose picks, among which batches' papers: ``limit`` each (None: each reader's
    ``max_items``), of one ``topic`` only when given."""

    users: Sequence[UserConfig]
    batch_ids: Sequence[int]
    limit: int | None = None
    topic: str | None = None


def new_run_id() -> str:
    return uuid.uuid4().hex


def read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, not a file") from None
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror}") from None


def parse_file(path: Path, fmt: str = "auto", batch_date: date | None = None,
               hints: ReadHints | None = None) -> tuple[ParsedBatch, str]:
    """Parse one file; returns the batch and the hash of its bytes (re-ingest detection).
    ``hints`` (a folder source's options) replaces the date and the file's time."""
    data = read_input(path)
    modified = datetime.fromtimestamp(path.stat().st_mtime)
    parsed = parse(data, str(path), fmt, year_hint=batch_date, modified=modified,
                   hints=replace(hints, batch_date=batch_date, modified=modified) if hints else None)
    return parsed, hashlib.sha256(data).hexdigest()


def store_batch(store: Store, batch: ParsedBatch, source: str, content_hash: str, run_id: str,
                ) -> IngestResult | None:
    """The one way a parsed batch is stored, for files and sources alike: an empty one (an
    arXiv feed on a holiday, a "[]" from Hugging Face) stores nothing and gives None; content
    stored before gives a result marked ``skipped``."""
    if not batch.entries:
        return None
    return store.ingest_batch(batch, source=source, content_hash=content_hash, run_id=run_id)


def ingest_files(store: Store, paths: Sequence[Path], fmt: str = "auto", batch_date: date | None = None,
                 run_id: str | None = None, on_file: Progress | None = None) -> IngestSummary:
    """Parse every file first (a bad file refuses the whole command), then store each as one batch."""
    run_id = run_id or new_run_id()
    parsed = []
    for path in paths:
        parsed.append((path, *parse_file(path, fmt, batch_date)))
        if on_file:
            on_file(1)
    results: list[IngestResult] = []
    empty = 0
    for path, batch, content_hash in parsed:
        result = store_batch(store, batch, f"file:{path.name}", content_hash, run_id)
        if result is None:
            log.info("%s: nothing new", path)
            empty += 1
            continue
        log.info("%s: %s", path, "already ingested" if result.skipped else f"{result.entries} entries")
        results.append(result)
    stored = [r for r in results if not r.skipped]
    return IngestSummary(
        files=len(results) + empty, batches=len(stored), skipped_files=len(results) - len(stored), empty_files=empty,
        entries=sum(r.entries for r in stored), new_papers=sum(r.new_papers for r in stored),
        duplicates=sum(r.duplicates for r in stored),
    )


def user_parts(count: int) -> int:
    """How many worker processes ``count`` users are split between (half ``PARALLEL_USERS`` a part at least)."""
    return parallel.parts_for(count, PARALLEL_USERS // 2)


def prepare_compiled_ranking() -> None:
    """Load the compiler of ranking's inner loops now, and use them even for small jobs (the
    warm process, before its first request)."""
    sparse_loops.load_compiler()
    sparse_loops.prefer_compiled()


def candidate_batches(store: Store, spec: str) -> list[int]:
    """``latest`` (the batches of the most recent ingest run), ``all``, or one batch id."""
    if spec == "latest":
        return store.latest_run_batch_ids()
    if spec == "all":
        return store.all_batch_ids()
    if spec.isdigit() and int(spec) in set(store.all_batch_ids()):
        return [int(spec)]
    raise NotFoundError(f"no batch {spec!r} (use latest, all, or an id from `recommender batches`)")


def recommend(config: Config, store: Store, users: Sequence[UserConfig], batch_ids: Sequence[int],
              limit: int | None = None, now: datetime | None = None) -> dict[str, list[Recommendation]]:
    """Each user's top papers among the entries of ``batch_ids``."""
    now = now or datetime.now(UTC)
    models = load_models(store, config)
    candidates = store.batch_papers(batch_ids)
    return rank_users(Ranking(config, store, models, now), users, candidates, limit)


def recommend_written(config: Config, store: Store, wanted: Wanted,
                      render: Callable[[Sequence[UserConfig], dict[str, list[Recommendation]]], str],
                      write: Callable[[str], None], now: datetime | None = None) -> int:
    """``render`` of ``recommend``'s results for ``wanted`` handed to ``write`` in user order;
    returns how many recommendations were written. Many users are split between worker processes (see
    base.parallel; profiles, explanations and output are Python-bound; the models are loaded
    once, before the fork), each writing its part once the parts before it are written: no
    output has to be sent back through a pipe."""
    now = now or datetime.now(UTC)
    users = wanted.users
    parts = user_parts(len(users))
    split = parts > 1
    # Many users need the compiled kernels: loaded once, before the fork, beside the reading.
    with sparse_loops.compiler_loading() if split else contextlib.nullcontext():
        models = load_models(store, config)
        candidates = store.batch_papers(wanted.batch_ids)
        ids = store.sync_users(u.email for u in users)  # once, here: neither half writes users

    def ranked(some: Sequence[UserConfig], on: Store = store) -> tuple[str, int]:
        # Each part has one core: BLAS threads would only wait for (and take) the others'.
        with threadpool_limits(limits=1, user_api="blas") if split else contextlib.nullcontext():
            results = rank_users(Ranking(config, on, models, now), some, candidates, wanted.limit, ids,
                                 persist=False, topic=wanted.topic)
        return render(some, results), sum(len(picks) for picks in results.values())

    def part(some: Sequence[UserConfig]) -> int:
        text, count = ranked(some)
        write(text)
        return count

    def child_part(some: Sequence[UserConfig]) -> int:
        with store.for_forked_child() as own:
            text, count = ranked(some, own)
        parallel.wait_turn()  # the parts before this one are written
        write(text)
        return count

    return sum(parallel.in_parts(part, users, parts, child_part))


def load_models(store: Store, config: Config, counted: bool = True) -> Models:
    """The fitted models for the current corpus and stars (fitting what is missing). Without
    ``counted`` (a worker that only ranks), for the stars the last count recorded: the models
    the last refit stored, found without reading every star."""
    text = stored_models.text_model(store, config.ranking)
    totals = store.star_totals(recorded=not counted)
    community = stored_models.community_model(store, text, config.ranking, totals)
    space = stored_models.lsa_space(store, text, config.ranking, community is not None, totals.readers)
    return Models(text, community, stored_models.with_near_groups(store, text, community, space, config.ranking),
                  stored_models.batch_forms(store, text, config.ranking))


def refresh(store: Store, config: Config, now: datetime | None = None,
            on_reader: Callable[[int, int], None] | None = None) -> Models:
    """Refit what the corpus or the stars changed and rebuild every configured user's profile
    (on PostgreSQL only those whose stars or clicks changed, in chunks), so
    that ranking afterwards only reads (what ingest and star imports do eagerly). With readers'
    own classifiers, ``on_reader(done, total)`` follows their fitting."""
    models = stored_models.with_batch_forms(store, load_models(store, config), config.ranking)
    if config.readers_in_store:
        _refresh_stored_readers(store, config, models, now or datetime.now(UTC), on_reader)
        return models
    ids = store.sync_users(u.email for u in config.users)
    pairs = [(ids.of(u.email), u) for u in config.users]
    own = stored_models.reader_progress(models, on_reader, lambda: len(config.users))
    if pairs and store.sqlite_path is None:  # PostgreSQL: no profiles cache, only the changed readers
        rebuilt = stored_models.rebuild_changed_profiles(store, models, pairs, config.ranking, now or datetime.now(UTC),
                                                         own)
        log.info("refit: %d of %d reader profile(s) rebuilt (stars or clicks changed)", rebuilt, len(pairs))
    elif pairs:
        stored_models.build_and_cache_profiles(store, models, pairs, config.ranking, now or datetime.now(UTC), own)
    return models


def _refresh_stored_readers(store: Store, config: Config, models: Models, now: datetime,
                            on_reader: Callable[[int, int], None] | None) -> None:
    """``refresh`` in a process that did not read the config's ``[[users]]`` (a command that
    only refits, on PostgreSQL): the readers are the database's, a page at a time, and only the
    settings of those whose stars or clicks changed are read (as a worker reads its shard's), so
    the refit's memory and time do not grow with the readers whose profiles stay."""
    directory = ReaderDirectory(config, store)
    own = stored_models.reader_progress(models, on_reader, store.reader_count)
    rebuilt = readers = 0
    for page in store.reader_pages(stored_models.REFIT_CHUNK):
        readers += len(page)
        stale, generations = store.stale_profiles([uid for uid, _ in page])
        wanted = set(stale)
        settings = directory.of([(uid, email) for uid, email in page if uid in wanted]) if wanted else {}
        chosen = [(uid, settings[uid]) for uid, _ in page if uid in settings]
        rebuilt += stored_models.rebuild_profiles(store, models, chosen, generations, config.ranking, now, own)
    log.info("refit: %d of %d reader profile(s) rebuilt (stars or clicks changed; readers from the database)",
             rebuilt, readers)


def rank_users(ranking: Ranking, users: Sequence[UserConfig], candidates: list[Paper], limit: int | None,
               ids: ReaderIds | None = None, persist: bool = True,
               topic: str | None = None) -> dict[str, list[Recommendation]]:
    """Rank ``candidates`` for every user at once: profiles from the signal log, starred and
    already-sent papers skipped. ``ids`` (lower-case email -> id) when the users are synced;
    ``persist``: store the profiles that changed (`recommend` only reads). Readers with topics
    are ranked per topic (see pipeline.topics); ``topic``: that topic's picks only."""
    config, store, models, now = ranking.config, ranking.store, ranking.models, ranking.now
    ids = ids if ids is not None else store.sync_users(u.email for u in users)
    plain = [u for u in users if not u.topics]
    found: dict[str, list[Recommendation]] = {}
    if plain:
        pairs = [(ids.of(u.email), u) for u in plain]
        built = stored_models.cached_or_built_profiles(store, models, pairs, config.ranking, now, persist,
                                                       ranking.on_reader)
        user_ids = [uid for uid, _ in pairs]
        sent = store.sent_map(user_ids)
        skips = [stars | sent.get(uid, set()) for uid, stars in zip(user_ids, built.starred, strict=True)]
        picks = rank_many(models, built, candidates, skips, [choice_for(config, u, limit, models) for u in plain],
                          store.titles_and_abstracts)
        found.update({user.email: result for user, result in zip(plain, picks, strict=True)})
    for user in users:
        if user.topics:
            found[user.email] = rank_topics(ranking, user, ids.of(user.email), candidates, limit, topic)
    return {user.email: found[user.email] for user in users}


def profile(config: Config, store: Store, user: UserConfig,
            topic: str | None = None) -> tuple[profiles.Profile, list[str]]:
    """One user's profile as ranking uses it (persisted when it changed), or that of one of
    their topics, and the model's terms."""
    models = load_models(store, config)
    if topic is not None:
        found, built, _ = section_profiles(Ranking(config, store, models, datetime.now(UTC)), user,
                                           store.user_id(user.email), topic)
        if not found:
            raise NotFoundError(f"{user.email} has no topic {topic!r}")
        return built.profile(0), models.text.shown_terms
    current = stored_models.current_profile(store, models, store.user_id(user.email), user, config.ranking,
                                            datetime.now(UTC))
    return current, models.text.shown_terms


def suggest_topics(config: Config, store: Store, user: UserConfig, max_k: int) -> list[topics.Suggestion]:
    """At most ``max_k`` topics the reader's stars split into (see pipeline.topics.suggest)."""
    models = load_models(store, config)
    return topics.suggest(store, models.text, models.space, models.collab, store.user_id(user.email), max_k)
