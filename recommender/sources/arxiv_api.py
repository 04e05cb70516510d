"""Title, authors and abstract of papers named only by their arXiv id, from the arXiv API
(``id_list``): up to 100 ids a request, at most one request every 3 seconds as arXiv asks,
with a timeout, bounded retries of temporary failures (timeouts, 5xx, 429), a size cap and
our User-Agent. The API answers an unknown id with nothing and a malformed one with an error
entry; both are reported, never invented. The clock and sleep are passed in, so the spacing
is tested without waiting."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from recommender.base.config import LookupConfig
from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError
from recommender.base.version import __version__
from recommender.sources import arxiv

log = logging.getLogger(__name__)
USER_AGENT = f"recommender/{__version__} (research-paper digest; arXiv id lookup)"
BATCH = 100  # ids a request
SPACING_SECONDS = 3.0  # arXiv's API terms: no more than one request every three seconds


class LookupFailed(Exception):
    """The API could not be asked (offline, timeouts, 5xx after retries, an unreadable answer)."""


@dataclass
class LookupResult:
    found: dict[str, ParsedPaper] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # ids the API does not know
    failed: str = ""  # why some ids could not be looked up at all ("" when every request answered)


class ArxivLookup:
    def __init__(self, config: LookupConfig, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.client = client or httpx.Client(timeout=config.timeout_seconds, follow_redirects=False)
        self.clock, self.sleep = clock, sleep
        self._last_request: float | None = None

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> LookupResult:
        """Look up these (bare, versionless) arXiv ids; ``progress`` is told how many ids each
        answered request covered."""
        result = LookupResult()
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start:start + BATCH]
            try:
                papers = self._request(batch)
            except LookupFailed as exc:
                result.failed = str(exc)
                log.info("arXiv lookup of %d id(s) failed: %s", len(wanted) - start, exc)  # the caller says so
                break
            for paper in papers:
                result.found[paper.arxiv_id] = paper
            result.unknown += [i for i in batch if i not in result.found]
            if progress is not None:
                progress(len(batch))
        return result

    def _request(self, batch: Sequence[str]) -> list[ParsedPaper]:
        params = {"id_list": ",".join(batch), "max_results": str(len(batch))}
        for attempt in range(1, self.config.attempts + 1):
            self._wait_turn()
            try:
                return self._get(params)
            except _Temporary as exc:
                if attempt == self.config.attempts:
                    raise LookupFailed(f"{self.config.arxiv_api_url}: {exc} (after {attempt} attempts)") from None
                log.info("arXiv lookup: %s; trying again", exc)
                self.sleep(self.config.retry_wait_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # nosec B101  # the loop returns or raises

    def _wait_turn(self) -> None:
        if self._last_request is not None:
            left = self._last_request + SPACING_SECONDS - self.clock()
            if left > 0:
                self.sleep(left)
        self._last_request = self.clock()

    def _get(self, params: dict[str, str]) -> list[ParsedPaper]:
        url = self.config.arxiv_api_url
        try:
            with self.client.stream("GET", url, params=params, headers={"User-Agent": USER_AGENT}) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Temporary(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.config.max_bytes:
                        raise LookupFailed(f"{url}: answer over the {self.config.max_bytes}-byte cap")
                status = response.status_code
        except httpx.TimeoutException:
            raise _Temporary("timed out") from None
        except httpx.ConnectError as exc:
            # No network, no such host or nothing listening: another try seconds later finds the
            # same, and an offline command would only wait; the next import or star asks again.
            raise LookupFailed(f"{url}: cannot connect ({exc})") from None
        except httpx.TransportError as exc:
            raise _Temporary(f"{type(exc).__name__}: {exc}") from None
        try:
            batch = arxiv.parse(bytes(body), url)
        except arxiv.ArxivApiError as exc:
            raise LookupFailed(exc.message.split(": ", 1)[-1]) from None
        except InputError as exc:
            raise LookupFailed(f"{url}: HTTP {status}, unreadable answer ({exc.message.split(': ', 1)[-1]})") from None
        if status != 200:
            raise LookupFailed(f"{url}: HTTP {status}")
        return list(batch.entries)


class _Temporary(Exception):
    """A failure worth another try."""
