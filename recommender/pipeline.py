"""The one place the stages are wired: files -> parsers -> store; store -> model ->
profiles -> ranking. The CLI and the scheduler call these functions and nothing deeper."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from recommender import profiles, textmodel
from recommender.config import Config, UserConfig
from recommender.domain import Paper, ParsedBatch, Recommendation
from recommender.errors import InputError, NotFoundError
from recommender.ranking import Choice, rank
from recommender.sources import parse
from recommender.store import IngestResult, Store

log = logging.getLogger(__name__)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestSummary:
    files: int
    batches: int
    skipped_files: int
    entries: int
    new_papers: int
    duplicates: int

    def line(self) -> str:
        skipped = f", {self.skipped_files} already ingested" if self.skipped_files else ""
        return (f"ingested {self.files} file(s){skipped}: {self.entries} entries, "
                f"{self.new_papers} new papers, {self.duplicates} duplicates")


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


def parse_file(path: Path, fmt: str = "auto", batch_date: date | None = None) -> tuple[ParsedBatch, str]:
    """Parse one file; returns the batch and the hash of its bytes (re-ingest detection)."""
    data = read_input(path)
    modified = datetime.fromtimestamp(path.stat().st_mtime)
    parsed = parse(data, str(path), fmt, year_hint=batch_date, modified=modified)
    return parsed, hashlib.sha256(data).hexdigest()


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
    for path, batch, content_hash in parsed:
        result = store.ingest_batch(batch, source=f"file:{path.name}", content_hash=content_hash, run_id=run_id)
        log.info("%s: %s", path, "already ingested" if result.skipped else f"{result.entries} entries")
        results.append(result)
    stored = [r for r in results if not r.skipped]
    return IngestSummary(
        files=len(results), batches=len(stored), skipped_files=len(results) - len(stored),
        entries=sum(r.entries for r in stored), new_papers=sum(r.new_papers for r in stored),
        duplicates=sum(r.duplicates for r in stored),
    )


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
    model = textmodel.load_or_fit(store, config.ranking)
    ids = store.sync_users(u.email for u in users)
    candidates = store.papers(store.batch_entries(batch_ids))
    return {user.email: rank_for_user(config, store, model, ids[user.email.lower()], user, candidates, limit, now)
            for user in users}


def rank_for_user(config: Config, store: Store, model: textmodel.TextModel, user_id: int, user: UserConfig,
                  candidates: list[Paper], limit: int | None, now: datetime) -> list[Recommendation]:
    profile = profiles.current(store, model, user_id, user, config.ranking, now)
    skip = set(store.starred_ids(user_id)) | store.sent_paper_ids(user_id)
    titles = {p.id: p.title for p in store.papers(profile.positives[:50])}
    choice = Choice(user=user.email, limit=limit or user.max_items, min_score=user.min_score,
                    exclude=user.exclude, authors=user.authors, why_terms=config.ranking.why_terms)
    return rank(model, profile, candidates, skip, choice, titles)
