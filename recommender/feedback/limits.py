"""What the feedback endpoint puts around every request: security headers and request ids, a
per-client rate limiter, and an HTTP protocol that bounds request heads, slow clients and
connections (uvicorn's, extended)."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, deque
from typing import Any, ClassVar

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

MAX_PATH = 2048
MAX_HEAD_BYTES = 64 * 1024  # request line and headers (nginx's default large_client_header_buffers is 32 KB)
DEFAULT_REQUEST_SECONDS = 20.0
REQUEST_TIMEOUT_ENV = "RECOMMENDER_REQUEST_TIMEOUT_SECONDS"  # set by `serve` for its worker processes
DEFAULT_PER_CLIENT = 100
PER_CLIENT_ENV = "RECOMMENDER_MAX_CONNECTIONS_PER_CLIENT"  # these two too
UNCAPPED_ENV = "RECOMMENDER_TRUSTED_PROXIES"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


_ID_PREFIX = os.urandom(3).hex()  # tells this process's ids from another worker's
_request_numbers = itertools.count(1)


def next_request_id() -> str:
    """12 hex digits naming one request in logs and error pages: a per-process prefix and a
    counter (a uuid4 per request read the kernel's random source each time, costly under load
    here; the id is not a secret)."""
    return f"{_ID_PREFIX}{next(_request_numbers) % 16**6:06x}"


class SecurityHeaders:
    """Adds the security headers and a request id to every response; refuses oversized paths."""

    def __init__(self, app: ASGIApp):
        self.app = app

    @property
    def state(self) -> Any:
        """The wrapped application's state (its lifespan keeps the checkpoint thread there)."""
        return self.app.state  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = next_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = message.get("headers", [])
                # A page that says how to cache itself (the feed: private, revalidated) keeps it.
                own = [h for h in given if h[0].lower() == b"cache-control"][:1]
                headers = [h for h in given if h[0].lower() not in dict(SECURITY_HEADERS)]
                security = [h for h in SECURITY_HEADERS if not (own and h[0] == b"cache-control")]
                message["headers"] = headers + own + security + [(b"x-request-id", request_id.encode())]
            try:
                await send(message)
            except RuntimeError as exc:
                if "closed" not in str(exc):
                    raise
                # uvloop's answer to a write on a connection dropped for never reading (see
                # BoundedHttpProtocol): the client is gone, as on a disconnect

        if len(scope.get("raw_path") or scope["path"].encode()) > MAX_PATH:
            await PlainTextResponse("URI too long\n", status_code=414)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def client_key(host: str) -> str:
    """Whom a limit counts: the address, but an IPv6 address's /64 network (one subscriber's
    line hands out the whole /64, a new address per connection) and an IPv4 address mapped
    into IPv6 as the IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


class RateLimiter:
    """At most ``per_minute`` hits per client in any 60 seconds (per process); 0 turns it off.
    The clients seen are kept least recently used first, and the oldest forgotten beyond
    ``max_clients``, so a hit costs the same with 100 clients or 100,000."""

    def __init__(self, per_minute: int, max_clients: int = 100_000):
        self.per_minute = per_minute
        self.max_clients = max_clients
        self.hits: OrderedDict[str, deque[float]] = OrderedDict()
        self.lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self.lock:
            window = self.hits.get(client)
            if window is None:
                window = self.hits[client] = deque()
                if len(self.hits) > self.max_clients:
                    self.hits.popitem(last=False)
            else:
                self.hits.move_to_end(client)
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.per_minute:
                return False
            window.append(now)
            return True


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with the limits an endpoint facing the internet needs: a request
    head larger than ``MAX_HEAD_BYTES`` is answered 431 and the connection closed; a request not
    received whole within ``request_seconds`` of its connection (or of the previous response)
    is closed, so idle, trickling and half-sent connections cannot pile up; nor can answers a
    client never reads (a response that cannot be written for ``request_seconds`` drops the
    connection); and one address (not a trusted proxy) holds at most ``per_client`` of the
    server's connections, so it cannot take every slot."""

    request_seconds = float(os.environ.get(REQUEST_TIMEOUT_ENV, DEFAULT_REQUEST_SECONDS))
    per_client = int(os.environ.get(PER_CLIENT_ENV, DEFAULT_PER_CLIENT))
    uncapped: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
        ipaddress.ip_network(n, strict=False) for n in os.environ.get(UNCAPPED_ENV, "").split(",") if n)
    _open_from: ClassVar[Counter[str]] = Counter()  # this process's connections by client address

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._answering: Any = None  # the request being answered (``cycle`` is the newest parsed: a pipelined one)
        super().connection_made(transport)
        self._head_bytes = 0
        self._reading_head = True
        self._deadline: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None
        self._counted = ""
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            # uvicorn's own answer to this (at the request) bypasses the app and its headers
            self._refuse(b"503 Service Unavailable", b"Service Unavailable\n", b"retry-after: 10\r\n")
            return
        address = self.client[0] if self.client else ""
        host = client_key(address) if address else ""
        if host and self.per_client and not self._trusted(address):
            if self._open_from[host] >= self.per_client:
                self._refuse_busy()
                return
            self._open_from[host] += 1
            self._counted = host
        self._arm_deadline()

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.uncapped)

    def _refuse_busy(self) -> None:
        self._refuse(b"503 Service Unavailable", b"Too many connections from your address\n", b"retry-after: 10\r\n")

    def _refuse(self, status: bytes, body: bytes, extra: bytes = b"") -> None:
        """Answer ``status`` with the security headers and close, before any request reached the app."""
        head = [b"HTTP/1.1 " + status + b"\r\n", extra]
        head += [name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS]
        head += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n\r\n", body]
        self.transport.write(b"".join(head))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, with the security headers."""
        self._refuse(b"400 Bad Request", msg.encode("ascii", "replace"))

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(self.request_seconds, self._never_read)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _never_read(self) -> None:
        self._stalled = None
        self._abort()  # close() would wait for the buffer the client never reads

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.request_seconds, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        if self.transport.get_write_buffer_size():  # answers it is not reading: close() would wait on them
            self._abort()
        elif not self.transport.is_closing():
            self.transport.close()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._answering = cycle
        super()._start_asgi_task(cycle, app)

    def _gone(self) -> None:
        """Every request of this connection, the one being answered and the pipelined ones, ends
        quietly as on a client's disconnect instead of writing to a closed transport."""
        for cycle in (self.cycle, self._answering, *(queued for queued, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True

    def _abort(self) -> None:
        """Drop the connection and what it never read."""
        self._gone()
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            # Only the head counts: what follows its blank line is a body or pipelined requests
            # (empty lines before a request line, which the parser skips, end nothing).
            start = len(data) - len(data.lstrip(b"\r\n")) if not self._head_bytes else 0
            end = data.find(b"\r\n\r\n", start)
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()
                return
        super().data_received(data)

    def _refuse_head(self) -> None:
        self._refuse(b"431 Request Header Fields Too Large", b"Request header fields too large\n")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._reading_head, self._head_bytes = True, 0
            self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        self._cancel_deadline()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        if self._counted:
            self._open_from[self._counted] -= 1
            if self._open_from[self._counted] <= 0:
                del self._open_from[self._counted]
        super().connection_lost(exc)
