"""Pulling sources: files dropped into a folder (a glob), or web feeds over HTTP. Parsing is
the parsers' job; this module only gets bytes, politely: timeouts, a descriptive User-Agent,
conditional requests (ETag / Last-Modified), bounded retries with backoff, a size cap, and
redirects followed only within the same host."""

from __future__ import annotations

import glob
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

import recommender.pipeline as pipeline
from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config, SourceConfig
from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError, RecommenderError
from recommender.base.formats import PAGED_FORMATS
from recommender.base.retry_after import seconds as retry_after_seconds
from recommender.base.version import __version__
from recommender.sources import paged_reader, parse
from recommender.store import Store
from recommender.store.state import DaemonState, SourceState

log = logging.getLogger(__name__)
USER_AGENT = f"recommender/{__version__} (research-paper digest; polite fetcher)"
MAX_REDIRECTS = 5


class FetchError(RecommenderError):
    """A source could not be fetched (after retries) or answered something unusable."""


class _Transient(Exception):
    """A failure worth another try (5xx, 429); ``retry_after`` is the server's Retry-After in seconds."""

    def __init__(self, message: str, retry_after: float = 0.0):
        super().__init__(message)
        self.retry_after = retry_after


MAX_RETRY_AFTER = 300.0  # a longer Retry-After is the next run's business, not this one's
FAILING_RUNS = 3  # a source failing this many runs in a row is a warning (log, config check)


@dataclass(frozen=True)
class FetchOutcome:
    source: str
    status: str  # new | unchanged | failed
    entries: int = 0
    new_papers: int = 0
    detail: str = ""

    def line(self) -> str:
        if self.status == "new":
            return f"{self.source}: {self.entries} entries, {self.new_papers} new papers"
        if self.status == "failed":
            return f"{self.source}: failed: {self.detail}"
        return f"{self.source}: nothing new" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Download:
    status: int  # 200, or 304 for not modified
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""


def download(client: httpx.Client, url: str, state: SourceState, max_bytes: int, attempts: int,
             retry_wait: float) -> Download:
    """GET ``url`` with a conditional request; transient failures (timeouts, connection errors,
    5xx, 429) are retried with exponential backoff, then raise FetchError."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, application/xml, text/xml, */*;q=0.5"}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    backoff = wait_exponential(multiplier=retry_wait, max=60)

    def wait(state: RetryCallState) -> float:  # the server's Retry-After when it gave one, else backoff
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, _Transient) else 0.0
        if asked > MAX_RETRY_AFTER:
            raise FetchError(f"{url}: {exc} with Retry-After {asked:.0f} s; left to the next run")
        return max(backoff(state), asked)

    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait,
                        retry=retry_if_exception(lambda e: isinstance(e, (_Transient, httpx.TransportError))),
                        reraise=True)
    try:
        for attempt in retrying:
            with attempt:
                return _get(client, url, headers, max_bytes)
    except _Transient as exc:
        raise FetchError(f"{url}: {exc} (after {attempts} attempts)") from None
    except httpx.TimeoutException:
        raise FetchError(f"{url}: timed out (after {attempts} attempts)") from None
    except httpx.TransportError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc} (after {attempts} attempts)") from None
    raise AssertionError("unreachable")


def _get(client: httpx.Client, url: str, headers: dict[str, str], max_bytes: int) -> Download:
    host = urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return Download(304)
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                target = urljoin(url, response.headers.get("location", ""))
                if urlsplit(target).netloc != host or urlsplit(target).scheme not in ("http", "https"):
                    raise FetchError(f"{url}: redirect to another host ({urlsplit(target).netloc or target}) not followed")
                url = target
                continue
            if response.status_code == 429 or response.status_code >= 500:
                wait = retry_after_seconds(response.headers.get("retry-after", ""), system_clock())
                raise _Transient(f"HTTP {response.status_code}", wait or 0.0)
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url}: response of {declared} bytes is over the {max_bytes}-byte cap")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"{url}: response is over the {max_bytes}-byte cap")
            return Download(200, bytes(body), response.headers.get("etag", ""),
                            response.headers.get("last-modified", ""))
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


class Fetcher:
    def __init__(self, config: Config, store: Store, client: httpx.Client | None = None,
                 clock: Clock | None = None, retry_wait: float = 2.0):
        self.config = config
        self.store = store
        self.client = client or httpx.Client(timeout=config.scheduler.fetch_timeout_seconds, follow_redirects=False)
        self.clock = clock or system_clock
        self.retry_wait = retry_wait
        self.state = DaemonState(store)

    def sources(self, names: Sequence[str] | None = None) -> list[SourceConfig]:
        if not names:
            return list(self.config.sources)
        known = {s.name: s for s in self.config.sources}
        missing = [n for n in names if n not in known]
        if missing:
            raise RecommenderError(f"no source named {missing[0]!r} (configured: {', '.join(known) or 'none'})")
        return [known[n] for n in names]

    def stale(self) -> list[SourceConfig]:
        """Sources not fetched within the freshness window."""
        window = timedelta(minutes=self.config.scheduler.fetch_freshness_minutes)
        now = self.clock()
        return [s for s in self.config.sources
                if (at := self.state.source(s.name).fetched_at) is None or now - at >= window]

    def fetch(self, sources: Sequence[SourceConfig], log_outcomes: bool = True) -> list[FetchOutcome]:
        """One fetch round (one ingest run): each source independently; a failure touches no other.
        Each outcome is logged (a failure as a warning) unless the caller prints them itself."""
        run_id = pipeline.new_run_id()
        outcomes = []
        for source in sources:
            try:
                outcome = self._folder(source, run_id) if source.path else self._web(source, run_id)
            except (RecommenderError, OSError) as exc:
                outcome = FetchOutcome(source.name, "failed", detail=str(exc))
            self._count(source.name, outcome)
            if log_outcomes:
                (log.warning if outcome.status == "failed" else log.info)("source %s", outcome.line())
            outcomes.append(outcome)
        return outcomes

    def _count(self, name: str, outcome: FetchOutcome) -> None:
        """Failed runs in a row: reset by a run that works; at FAILING_RUNS and beyond a warning."""
        state = self.state.source(name)
        if outcome.status != "failed":
            if state.failures:
                self.state.save_source(SourceState(**{**state.__dict__, "failures": 0}))
            return
        failures = state.failures + 1
        self.state.save_source(SourceState(**{**state.__dict__, "failures": failures, "last_error": outcome.detail}))
        if failures >= FAILING_RUNS:
            log.warning("source %s has failed %d runs in a row (last: %s)", name, failures, outcome.detail)

    def _folder(self, source: SourceConfig, run_id: str) -> FetchOutcome:
        pattern = str(self.config.resolve(source.path))
        entries = new = 0
        problems = []
        for name in sorted(glob.glob(pattern)):
            path = Path(name)
            if not path.is_file():
                continue
            try:
                batch, content_hash = pipeline.parse_file(path, source.kind, hints=hints(source, self.clock()))
            except InputError as exc:
                problems.append(str(exc))
                continue
            result = pipeline.store_batch(self.store, batch, source.name, content_hash, run_id)
            if result is not None and not result.skipped:
                entries += result.entries
                new += result.new_papers
        self.state.save_source(SourceState(**{**self.state.source(source.name).__dict__, "fetched_at": self.clock(),
                                              "last_error": "; ".join(problems)}))
        if problems and not entries:
            return FetchOutcome(source.name, "failed", detail=problems[0])
        return FetchOutcome(source.name, "new" if entries else "unchanged", entries, new)

    def _web(self, source: SourceConfig, run_id: str) -> FetchOutcome:
        if source.kind in PAGED_FORMATS:
            return self._paged(source, run_id)
        state = self.state.source(source.name)
        now = self.clock()
        url = source.url.replace("{date}", now.date().isoformat())
        got = download(self.client, url, state, self.config.scheduler.fetch_max_bytes,
                       self.config.scheduler.fetch_attempts, self.retry_wait)
        if got.status == 304:
            self.state.save_source(SourceState(**{**state.__dict__, "fetched_at": now, "last_error": ""}))
            return FetchOutcome(source.name, "unchanged", detail="not modified")
        batch = parse(got.body, f"{source.name} ({url})", source.kind, hints=hints(source, now))
        self.state.save_source(SourceState(**{**state.__dict__, "etag": got.etag, "last_modified": got.last_modified,
                                              "fetched_at": now, "last_error": ""}))
        return self._ingest(source, batch, hashlib.sha256(got.body).hexdigest(), run_id)

    def _paged(self, source: SourceConfig, run_id: str) -> FetchOutcome:
        """An API read page by page (bioRxiv, medRxiv): every page of the date range, one batch."""
        module = paged_reader(source.kind)
        state = self.state.source(source.name)
        now = self.clock()
        entries: list[ParsedPaper] = []
        digest = hashlib.sha256()
        for first in module.first_urls(source.url, source.kind, now.date(), source.days, source.categories):
            url: str | None = first
            pages = 0
            while url:
                got = download(self.client, url, SourceState(source.name), self.config.scheduler.fetch_max_bytes,
                               self.config.scheduler.fetch_attempts, self.retry_wait)
                pages += 1
                # the subject was asked of the API already: the parser keeps every paper of the page
                page = parse(got.body, f"{source.name} ({url})", source.kind,
                             hints=ReadHints(now.date(), include_replacements=source.include_replacements))
                entries += page.entries
                digest.update(got.body)
                url = module.next_url(url, got.body, pages)
        self.state.save_source(SourceState(**{**state.__dict__, "fetched_at": now, "last_error": ""}))
        batch = ParsedBatch(format=source.kind, entries=tuple(entries), batch_date=now.date())
        return self._ingest(source, batch, digest.hexdigest(), run_id)

    def _ingest(self, source: SourceConfig, batch: ParsedBatch, content_hash: str, run_id: str) -> FetchOutcome:
        result = pipeline.store_batch(self.store, batch, source.name, content_hash, run_id)
        if result is None:
            log.info("source %s: nothing new today (an empty day, a weekend or a feed not updated yet)", source.name)
            return FetchOutcome(source.name, "unchanged", detail="no entries")
        if result.skipped:
            return FetchOutcome(source.name, "unchanged", detail="same content as before")
        return FetchOutcome(source.name, "new", result.entries, result.new_papers)


def failing_sources(config: Config, store: Store) -> list[str]:
    """One line per configured source that has failed FAILING_RUNS fetch runs in a row or more."""
    configured = {s.name for s in config.sources}
    return [f"source {state.name!r} has failed {state.failures} fetch runs in a row (last: {state.last_error})"
            for state in DaemonState(store).sources() if state.name in configured and state.failures >= FAILING_RUNS]


def hints(source: SourceConfig, now: datetime) -> ReadHints:
    """What a reader is told about a source: its day and its options."""
    return ReadHints(now.date(), include_replacements=source.include_replacements, categories=source.categories,
                     exclude_titles=source.exclude_titles, exclude_types=source.exclude_types)
