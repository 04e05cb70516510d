"""The public Python API: one ``Recommender`` per install (its config and database), with one
method per use case. It owns the store, the fitted models (loaded on first use), the clock
and the link signer, and applies "refit the models after the corpus or the stars change"
itself, once, in ``_refit``: a script, a notebook and the command line get the same results.

    >>> from recommender import Recommender
    >>> with Recommender.open("config.toml") as rec:
    ...     picks = rec.recommend("ada@example.org", limit=10)

docs/API.md lists every method and what it returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import recommender.pipeline as pipeline
from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, UserConfig, find_config_path, listed_emails, load_config
from recommender.base.domain import Paper, Recommendation
from recommender.base.errors import ConfigError, NotFoundError, RecommenderError
from recommender.pipeline import breakdown, star_import
from recommender.pipeline.api_readers import ReaderMethods
from recommender.pipeline.api_results import (
    Breakdown,
    Preview,
    ProfileView,
    Star,
    Starred,
)
from recommender.pipeline.api_service import InstallMethods
from recommender.pipeline.stored_models import OnReader
from recommender.store import Store
from recommender.store.checkpoints import BackgroundCheckpoints
from recommender.store.papers import BatchInfo
from recommender.store.title_match import paper_by_title

if TYPE_CHECKING:
    from recommender.base.link_signing import LinkSigner
    from recommender.digest.states import UserResult
    from recommender.pipeline.fetching import FetchOutcome
    from recommender.sources.arxiv_api import ArxivLookup

Database = Store  # what ``open_database`` returns, for the shells' annotations


class Recommender(ReaderMethods, InstallMethods):
    """One install: its config, its database, its models.

    Example::

        rec = Recommender.open("config.toml")
        for pick in rec.recommend("ada@example.org", limit=10):
            print(pick.rank, pick.paper.title, pick.explanation.sentence())
        rec.close()
    """

    def __init__(self, config: Config, store: Store | None = None, clock: Clock = system_clock,
                 on_refit: OnReader | None = None):
        """``store``: an open store to use (and leave open), else the config's database is
        opened on first use. ``on_refit(done, total)`` follows the fitting of readers' own
        classifiers after a change."""
        self.config = config
        self.clock = clock
        self.on_refit = on_refit
        self._given_store = store
        self._models: pipeline.Models | None = None

    @classmethod
    def open(cls, config: str | Path | Config, database_url: str | None = None, clock: Clock = system_clock,
             ) -> Recommender:
        """The install whose config file is ``config`` (a path, or a loaded ``Config``);
        ``database_url`` overrides its ``[database].url``.

        Example: ``Recommender.open("config.toml", "sqlite:///other.sqlite")``"""
        if not isinstance(config, Config):
            config = load_config(find_config_path(str(config)), database_url)
        elif database_url:
            raise RecommenderError("give database_url with a config path, not with a loaded Config")
        return cls(config, clock=clock)

    # -- what it owns ---------------------------------------------------------------------
    @cached_property
    def database(self) -> Store:
        """The database as it is, its schema not checked (for ``init``). It keeps each loaded
        model for the next use while the stored one is unchanged: a worker's shards, the
        daemon's runs and the web app's requests rank with the same model object (and what
        is kept with it, such as the texts explanations read) instead of loading it anew."""
        return self._given_store or Store.open(self.config.database.url, keep_models=True)

    @cached_property
    def store(self) -> Store:
        """The database, its schema checked (``recommender init`` creates it)."""
        self.database.check_schema()
        return self.database

    @staticmethod
    def open_database(url: str, keep_models: bool = False) -> Store:
        """A database to hand to several ``Recommender`` objects in turn; ``keep_models``
        keeps each loaded model for the next while its stored stamp is unchanged (the
        ``warm`` process)."""
        return Store.open(url, keep_models=keep_models)

    @staticmethod
    def prepare_ranking() -> None:
        """Load the compiled inner loops of ranking now, not on the first request."""
        pipeline.prepare_compiled_ranking()

    @property
    def models(self) -> pipeline.Models:
        """The fitted models for the current papers and stars (fitted now when missing)."""
        if self._models is None:
            self._models = pipeline.load_models(self.store, self.config)
        return self._models

    @cached_property
    def signer(self) -> LinkSigner:
        """Signs and checks the links in digests (needs the secret the config names)."""
        from recommender.pipeline.digests import signer_for

        return signer_for(self.config, self.clock)

    def close(self) -> None:
        """Close the database, unless it was given open."""
        if self._given_store is None and "database" in self.__dict__:
            self.database.close()
        self.__dict__.pop("store", None)
        self.__dict__.pop("database", None)
        self._models = None

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def user(self, email: str | None = None) -> UserConfig:
        """The configured reader ``email``; without it, the only one configured."""
        configured = self.config.users
        if email:
            return self.config.user(email)
        if len(configured) == 1:
            return configured[0]
        raise ConfigError(f"{self.config.path}: " + ("no [[users]] configured; add one with an email" if not configured
                          else f"several users are configured; name one ({listed_emails(configured)})"))

    def _refit(self) -> None:
        """The one rule after the papers or the stars change: refit what they changed and
        rebuild every reader's profile, so ranking afterwards only reads."""
        self._models = pipeline.refresh(self.store, self.config, self.clock(), on_reader=self.on_refit)

    def _ranking(self) -> pipeline.Ranking:
        """This install's models as they are now, to rank with."""
        return pipeline.Ranking(self.config, self.store, self.models, self.clock(), self.on_refit)

    def _lookup(self, offline: bool) -> ArxivLookup | None:
        return None if offline else star_import.arxiv_lookup(self.config)

    # -- papers in ------------------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path], fmt: str = "auto", batch_date: date | None = None,
               on_file: Callable[[int], None] | None = None) -> pipeline.IngestSummary:
        """Store digest files, each as one batch; a file ingested before adds nothing.

        Example: ``rec.ingest(["seeds/2025-03-11.txt"]).new_papers``"""
        # The log a large ingest fills is checkpointed by a thread while the models are refit.
        checkpoints = BackgroundCheckpoints(self.store).start()
        try:
            result = pipeline.ingest_files(self.store, [Path(p).expanduser() for p in paths], fmt, batch_date,
                                           on_file=on_file)
            if result.new_papers:
                self._refit()
        finally:
            checkpoints.stop()
        return result

    def fetch(self, sources: Sequence[str] = (), log_outcomes: bool = True) -> list[FetchOutcome]:
        """Pull the configured sources (all, or those named) as one ingest run
        (``log_outcomes``: log each source's line too).

        Example: ``[o.line() for o in rec.fetch(["arxiv-lg"])]``"""
        from recommender.pipeline.fetching import Fetcher

        fetcher = Fetcher(self.config, self.store, clock=self.clock)
        outcomes = fetcher.fetch(fetcher.sources(sources), log_outcomes)
        if any(o.new_papers for o in outcomes):
            self._refit()
        return outcomes

    # -- stars ----------------------------------------------------------------------------
    def star(self, email: str | None, references: Sequence[str] = (), titles: Sequence[str] = (),
             from_config: bool = False, offline: bool = False, topic: str | None = None) -> Starred:
        """Star papers by id, arXiv id (any usual form; one not stored is fetched from arXiv
        unless ``offline``) or title; ``from_config`` adds the reader's ``stars`` key.

        Example: ``rec.star("ada@example.org", ["1706.03762"]).added``"""
        user = self.user(email)
        version = self.store.corpus_version()
        wanted = list(references) + list(user.stars if from_config else ())
        ids = star_import.resolve_references(self.store, wanted, self._lookup(offline))
        ids += [paper_by_title(self.store, t).id for t in titles]
        if not ids:
            raise RecommenderError("give paper ids or titles to star")
        added = self.store.star(self.store.user_id(user.email), ids, topic=self._topic(user, topic))
        if added or self.store.corpus_version() != version:
            self._refit()
        return Starred(user.email, self.store.papers(ids), added)

    def unstar(self, email: str | None, references: Sequence[str], topic: str | None = None) -> int:
        """Remove stars (papers by id, alias or arXiv id; with ``topic``, only those in that
        topic); returns how many went.

        Example: ``rec.unstar("ada@example.org", ["2412.00420"])``"""
        user = self.user(email)
        known = self.store.resolve_ids(list(references))
        unknown = [r for r in references if r not in known]
        if unknown:  # a mistyped id is said, not "removed 0 star(s)"; nothing is removed then
            raise NotFoundError(f"no paper with id {unknown[0]!r} (see `recommender stars` for your starred papers)")
        removed = self.store.unstar(self.store.user_id(user.email), list(references), self._topic(user, topic))
        if removed:
            self._refit()
        return removed

    def stars(self, email: str | None = None, topic: str | None = None) -> list[Star]:
        """A reader's starred papers, oldest star first, each with its topic (``topic``: only
        that topic's).

        Example: ``[s.paper.id for s in rec.stars("ada@example.org")]``"""
        user = self.user(email)
        user_id = self.store.user_id(user.email)
        topics = self.store.star_topics(user_id)
        return [Star(paper, at, topics.get(paper.id))
                for paper, at in self.store.stars(user_id, self._topic(user, topic))]

    @staticmethod
    def _topic(user: UserConfig, name: str | None) -> str | None:
        """The config's spelling of the reader's topic ``name``; NotFoundError without one."""
        if name is None:
            return None
        topic = user.topic(name)
        if topic is None:
            there = ", ".join(repr(t.name) for t in user.topics) or "none: add [[users.topics]] to the config"
            raise NotFoundError(f"{user.email} has no topic {name!r} (topics: {there})")
        return topic.name

    def import_stars(self, path: str | Path, skip_unknown: bool = False,
                     offline: bool = False) -> star_import.StarImport:
        """Star the (user, paper_id) rows of a CSV or JSONL file in one transaction.

        Example: ``rec.import_stars("exported.csv").added``"""
        result = star_import.import_stars(self.store, self.config, Path(path).expanduser(), skip_unknown,
                                          self._lookup(offline))
        if result.added:
            self._refit()
        return result

    def import_library(self, email: str | None, paths: Sequence[str | Path], fmt: str = "auto",
                       strict: bool = False, offline: bool = False,
                       progress: Callable[[int], None] | None = None,
                       topic: str | None = None, topics_from: str | None = None) -> star_import.LibraryImport:
        """Star the papers of reference-manager exports (BibTeX, Zotero CSV, RIS).

        Example: ``rec.import_library("ada@example.org", ["export.bib"]).new_stars``"""
        user = self.user(email)
        options = star_import.LibraryOptions(fmt, strict, self._topic(user, topic), topics_from,
                                             [t.name for t in user.topics])
        result = star_import.import_library(self.store, user.email, [Path(p).expanduser() for p in paths], options,
                                            self._lookup(offline), progress)
        if result.new_stars or result.added:
            self._refit()
        return result

    # -- ranking --------------------------------------------------------------------------
    def recommend(self, email: str | None = None, limit: int | None = None, batch: str = "latest",
                  topic: str | None = None) -> list[Recommendation]:
        """A reader's best new papers, best first, each with why it was picked. ``batch``:
        ``latest`` (the last ingest run), ``all``, or a batch id.

        Example: ``rec.recommend("ada@example.org", limit=10)[0].paper.title``"""
        user = self.user(email)
        if topic is not None:  # that topic's picks only (see pipeline.topics)
            candidates = self.store.batch_papers(pipeline.candidate_batches(self.store, batch))
            return pipeline.rank_users(self._ranking(), [user], candidates, limit,
                                       topic=self._topic(user, topic))[user.email]
        return self.recommend_many([user.email], limit, batch)[user.email]

    def recommend_many(self, emails: Sequence[str] | None = None, limit: int | None = None,
                       batch: str = "latest") -> dict[str, list[Recommendation]]:
        """``recommend`` for several readers at once (every configured one by default),
        keyed by their configured email.

        Example: ``rec.recommend_many(limit=5)["ada@example.org"]``"""
        users = [self.config.user(e) for e in emails] if emails is not None else list(self.config.users)
        candidates = self.store.batch_papers(pipeline.candidate_batches(self.store, batch))
        return pipeline.rank_users(self._ranking(), users, candidates, limit)

    def recommend_written(self, emails: Sequence[str], limit: int | None, batch: str,
                          render: Callable[[Sequence[UserConfig], dict[str, list[Recommendation]]], str],
                          write: Callable[[str], None], topic: str | None = None) -> int | None:
        """``recommend_many`` for many readers, each part's picks rendered and written as soon
        as it is ranked (parts in parallel processes where they can fork); returns how many
        picks were written, None when no batch holds candidates. ``topic``: that topic's picks
        only (of one reader).

        Example: ``rec.recommend_written(["ada@example.org"], 5, "latest", to_text, print)``"""
        batch_ids = pipeline.candidate_batches(self.store, batch)
        if not batch_ids:  # imported libraries are what a reader knows, not candidates
            return None
        users = [self.config.user(e) for e in emails]
        if topic is not None:
            topic = self._topic(users[0], topic)
        return pipeline.recommend_written(self.config, self.store, pipeline.Wanted(users, batch_ids, limit, topic),
                                          render, write)

    def explain(self, email: str | None, paper_id: str) -> Breakdown:
        """How one paper's score for a reader is made up.

        Example: ``rec.explain("ada@example.org", "2412.00420").why``"""
        return Breakdown(**breakdown.explain(self.config, self.store, self.user(email), paper_id, self.clock()))

    def profile(self, email: str | None = None, terms: int = 15, topic: str | None = None) -> ProfileView:
        """A reader's profile (or that of their ``topic``): its ``terms`` strongest terms of
        each sign and the papers behind it.

        Example: ``rec.profile("ada@example.org").positive_terms[:3]``"""
        user = self.user(email)
        built, vocabulary = pipeline.profile(self.config, self.store, user, self._topic(user, topic))
        return ProfileView.of(user.email, built, vocabulary, self.store.titles(built.positives + built.negatives),
                              terms)

    # -- digests --------------------------------------------------------------------------
    def preview(self, email: str | None = None) -> Preview | None:
        """A reader's next digest, rendered, without storing or sending anything; None when
        there is nothing new to send.

        Example: ``Path("digest.html").write_text(rec.preview("ada@example.org").html)``"""
        from recommender.pipeline import digests

        previewed = digests.preview(self.config, self.store, self.user(email), self.clock)
        if previewed is None:
            return None
        rendered, count, message = previewed
        return Preview(rendered.subject, rendered.html, rendered.text, message, count)

    def send(self, emails: Sequence[str] | None = None, dry_run: bool = False) -> list[UserResult]:
        """Build each reader's digest (every configured one by default) and send it now,
        pending deliveries first; one result per reader.

        Example: ``[r.line() for r in rec.send(dry_run=True)]``"""
        from recommender.base import parallel
        from recommender.pipeline import digests

        users = [self.config.user(e) for e in emails] if emails is not None else list(self.config.users)
        return digests.run(self.config, self.store, users, self.clock, dry_run=dry_run,
                           deliver_while_queueing=parallel.can_fork())

    # -- browsing -------------------------------------------------------------------------
    def papers(self) -> list[Paper]:
        """Every stored paper, oldest first.

        Example: ``len(rec.papers())``"""
        return self.store.papers()

    def search_papers(self, query: str) -> list[Paper]:
        """Papers whose title or abstract holds every word of ``query``.

        Example: ``rec.search_papers("optimal transport")``"""
        return self.store.search_papers(query)

    def paper(self, paper_id: str) -> Paper:
        """One paper by id, alias or arXiv id (NotFoundError when there is none).

        Example: ``rec.paper("2412.00420").abstract``"""
        return self.store.paper(paper_id)

    def batches(self) -> list[BatchInfo]:
        """The stored digest batches, oldest first.

        Example: ``[b.id for b in rec.batches()]``"""
        return self.store.batches()
