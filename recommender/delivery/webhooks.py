"""Posting to webhooks (Slack, Discord, any JSON endpoint) with httpx: the parts of a post in
order, each confirmed to the caller before the next is sent (so a crash re-sends only the
part in flight). HTTP 429 waits for its Retry-After (a longer wait defers the post to a later
run); 5xx answers, timeouts and refused connections retry with backoff (tenacity), then
defer; any other 4xx fails the post with the endpoint's reason."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from recommender.base import retry_after
from recommender.base.clock import Clock, system_clock
from recommender.base.domain import DeliveryStatus
from recommender.base.settings import WebhookConfig

log = logging.getLogger(__name__)
REPLY_CHARS = 300


@dataclass(frozen=True)
class PostOutcome:
    post_id: int
    status: DeliveryStatus
    detail: str
    attempts: int
    retry_after: float | None = None  # deferred: seconds until the endpoint wants the next try


class _Transient(Exception):
    """A 5xx answer, a timeout or a refused connection: worth another try."""


class _RateLimited(_Transient):
    def __init__(self, detail: str, wait: float):
        super().__init__(detail)
        self.wait = wait


class _Refused(Exception):
    """A 4xx other than 429: this post will not be accepted as it is."""


def retry_after_seconds(response: httpx.Response, now: datetime) -> float:
    """Retry-After in seconds (RFC 9110: seconds or an HTTP date), else Discord's JSON
    ``retry_after``, else one second."""
    header = retry_after.seconds(response.headers.get("retry-after", ""), now)
    if header is not None:
        return header
    try:
        body = response.json()
    except ValueError:
        return 1.0
    wait = body.get("retry_after") if isinstance(body, dict) else None
    return float(wait) if isinstance(wait, int | float) and not isinstance(wait, bool) else 1.0


class WebhookSender:
    def __init__(self, hook: WebhookConfig, sleep: Callable[[float], None] = time.sleep,
                 clock: Clock = system_clock):
        self.hook = hook
        self.sleep = sleep
        self.clock = clock

    def send(self, post_id: int, parts: Sequence[object], start: int,
             part_sent: Callable[[int, str], None]) -> PostOutcome:
        """Send ``parts[start:]``; ``part_sent(count, reply)`` after each accepted part."""
        url = self.hook.url
        if not url:
            return PostOutcome(post_id, DeliveryStatus.DEFERRED, f"${self.hook.url_env} is not set", 0)
        attempts = 0
        with httpx.Client(timeout=self.hook.timeout_seconds, follow_redirects=False) as client:
            for index in range(start, len(parts)):
                try:
                    reply, tries = self._send_part(client, url, parts[index])
                except _RateLimited as exc:
                    return PostOutcome(post_id, DeliveryStatus.DEFERRED, str(exc), attempts + 1, exc.wait)
                except _Transient as exc:
                    return PostOutcome(post_id, DeliveryStatus.DEFERRED, str(exc), attempts + self.hook.max_attempts)
                except _Refused as exc:
                    return PostOutcome(post_id, DeliveryStatus.FAILED, str(exc), attempts + 1)
                attempts += tries
                part_sent(index + 1, reply)
        return PostOutcome(post_id, DeliveryStatus.SENT, f"{len(parts)} part(s) accepted", attempts)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _RateLimited):
            return exc.wait
        return float(self.hook.retry_initial_seconds * 2 ** (state.attempt_number - 1))

    def _send_part(self, client: httpx.Client, url: str, body: object) -> tuple[str, int]:
        retrying = Retrying(stop=stop_after_attempt(self.hook.max_attempts), wait=self._wait, sleep=self.sleep,
                            retry=retry_if_exception_type(_Transient) & _short_enough(self.hook), reraise=True)
        tries = 0
        for attempt in retrying:
            with attempt:
                tries += 1
                return self._post_once(client, url, body), tries
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _post_once(self, client: httpx.Client, url: str, body: object) -> str:
        try:
            response = client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Transient(f"{self.hook.name}: timed out after {self.hook.timeout_seconds:g}s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _Transient(f"{self.hook.name}: {type(exc).__name__}: {exc}") from None
        text = " ".join(response.text.split())[:REPLY_CHARS]
        code = response.status_code
        if 200 <= code < 300:
            return f"HTTP {code} {text}".strip()
        if code == 429:
            wait = retry_after_seconds(response, self.clock())
            log.info("webhook %s: rate limited, retry after %.1fs", self.hook.name, wait)
            raise _RateLimited(f"{self.hook.name}: HTTP 429 (rate limited; retry after {wait:g}s)", wait)
        if code >= 500 or code == 408:
            raise _Transient(f"{self.hook.name}: HTTP {code} {text}".strip())
        raise _Refused(f"{self.hook.name}: HTTP {code} {text}".strip())


class _short_enough(retry_if_exception_type):  # noqa: N801  # reads as tenacity's own conditions
    """Retry a 429 within the run only when its wait is short; a long one defers the post."""

    def __init__(self, hook: WebhookConfig):
        super().__init__(_Transient)
        self.hook = hook

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        return not (isinstance(exc, _RateLimited) and exc.wait > self.hook.max_retry_after_seconds)
