"""The feedback endpoint: a small Starlette app served by uvicorn. It parses requests and
renders pages; what a link does (record a click, undo it, unsubscribe, show a stored digest,
answer a feed) is a ``Site`` it is given (``pipeline.web_site`` builds one over the install's
store, as ``Recommender.web_app`` does). It keeps no state of its own but a per-process rate
limiter, so any number of processes can serve it behind a load balancer."""

from __future__ import annotations

import contextlib
import email
import email.policy
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from recommender.base.config import Config
from recommender.base.link_signing import PreviewLink, TokenError, TokenExpired
from recommender.digest.render import TEMPLATES
from recommender.feedback.clicks import Click, LinkGone, open_target
from recommender.feedback.feed_page import ATOM_TYPE, FeedAnswer, FeedGone
from recommender.feedback.limits import (
    RateLimiter,
    SecurityHeaders,
    client_key,
)

log = logging.getLogger(__name__)
MAX_BODY = 1024
FEEDBACK_ACTIONS = ("more", "less")


class Site(Protocol):
    """What the links do, behind the pages. Each raises ``TokenError`` (or ``TokenExpired``)
    for a bad link and ``LinkGone`` for one whose target went; ``feed`` raises ``FeedGone``."""

    async def click(self, token: str, action: str, client: str) -> Click:
        """Verify a more / less / open link and record the click once (a repeat or a link
        scan records nothing); returns once it is stored."""
        ...

    def resolve(self, token: str, action: str) -> Click:
        """Verify a link for ``action`` and find what it points to; records nothing."""
        ...

    def undo(self, token: str) -> bool:
        """Remove the feedback a more / less / open link recorded; False if there was none."""
        ...

    def unsubscribe(self, token: str) -> Click:
        """Unsubscribe the reader an unsubscribe link names."""
        ...

    def digest_page(self, token: str) -> str:
        """The stored digest a view link names, as a web page (HTML)."""
        ...

    def feed(self, token: str, if_none_match: str | None, if_modified_since: str | None) -> FeedAnswer:
        """A reader's Atom feed, or 304 when the client's copy is current."""
        ...

    def start(self) -> object:
        """Start the site's background work as the app starts; returns its handle
        (kept as ``app.state.checkpoints``)."""
        ...

    def close(self) -> None:
        """Finish what is queued (clicks not yet committed) as the app stops."""
        ...
def page(heading: str, lines: list[str], status: int = 200, request: Request | None = None,
         form: tuple[str, str, list[tuple[str, str]], str] | None = None) -> HTMLResponse:
    action, label, fields, css = form or ("", "", [], "")
    html = TEMPLATES.get_template("page.html.j2").render(
        heading=heading, lines=lines, form_action=action, form_label=label, form_fields=fields, form_class=css,
        request_id=request.scope.get("state", {}).get("request_id", "") if request is not None and status >= 400 else "")
    return HTMLResponse(html, status_code=status)


def _one_click(content_type: str, body: bytes, in_query: str | None) -> bool:
    """An RFC 8058 one-click request: ``List-Unsubscribe=One-Click`` as a multipart/form-data
    field (what the RFC says a provider SHOULD send), a urlencoded field, or in the query."""
    if in_query == "One-Click":
        return True
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = email.message_from_bytes(b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
                                        + body, policy=email.policy.default)
        if not form.is_multipart():
            return False
        return any(part.get_param("name", header="content-disposition") == "List-Unsubscribe"
                   and _stripped(part.get_payload(decode=True)) == b"One-Click" for part in form.iter_parts())
    fields = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True)
    return "One-Click" in fields.get("List-Unsubscribe", [])


def create_app(config: Config, site: Site) -> ASGIApp:
    """The endpoint's ASGI app: the pages of ``site``'s use cases within ``config``'s limits."""
    limiter = RateLimiter(config.feedback.rate_limit_per_minute)

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def refusal(request: Request, exc: Exception) -> Response:
        """Token errors become plain 4xx pages; nothing leaks a stack trace."""
        if isinstance(exc, TokenExpired):
            return page("This link has expired", ["Feedback links work for "
                        f"{config.feedback.max_age_days} days. Newer digests have fresh links."], 410, request)
        if isinstance(exc, PreviewLink):
            return page("This link is from a preview", ["Links in a digest preview do nothing; the digest that "
                        "is sent carries working ones. Nothing was recorded."], 400, request)
        if isinstance(exc, LinkGone):
            return page("This link no longer works", [f"{str(exc).capitalize()}. Nothing was recorded."], 404,
                        request)
        return page("This link is not valid", ["It may have been cut short or changed. "
                    "Nothing was recorded."], 400, request)

    def guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
            try:
                return handler(request)
            except (TokenError, LinkGone) as exc:
                return refusal(request, exc)

        wrapped.__name__ = handler.__name__
        return wrapped

    def limited(request: Request) -> Response | None:
        if not limiter.allow(client_key(client_of(request))):
            return page("Too many requests", ["Please wait a minute and try again."], 429, request)
        return None

    def home(request: Request) -> Response:
        return PlainTextResponse("recommender feedback endpoint: ok\n")

    async def feedback(request: Request) -> Response:
        action = request.path_params["action"]
        blocked = limited(request)
        if blocked:
            return blocked
        if action not in FEEDBACK_ACTIONS:  # an open, view or unsubscribe link has its own address
            return page("Not found", ["There is nothing at this address."], 404, request)
        try:
            click = await _click(request, action)
        except (TokenError, LinkGone) as exc:
            return refusal(request, exc)
        return _feedback_page(click)

    async def _click(request: Request, action: str) -> Click:
        """GET records the click (group-committed, awaited without a thread); HEAD only checks."""
        token = request.path_params["token"]
        if request.method == "GET":
            return await site.click(token, action, client_of(request))
        return await run_in_threadpool(site.resolve, token, action)

    def _feedback_page(click: Click) -> Response:
        title = click.paper.title if click.paper else ""
        heading = f"Got it: {'more' if click.link.action == 'more' else 'fewer'} papers like “{title}”"
        lines = ["Your next digest will take this into account.",
                 "Clicked by mistake? Undo it below."]
        return page(heading, lines, form=(f"/feedback/undo/{click.token}", "Undo", [], "secondary"))

    @guarded
    def undo(request: Request) -> Response:
        blocked = limited(request)
        if blocked:
            return blocked
        undone = site.undo(request.path_params["token"])
        return page("Undone" if undone else "Nothing to undo",
                    ["The feedback of this link was removed." if undone else "No feedback from this link is recorded."])

    async def open_paper(request: Request) -> Response:
        blocked = limited(request)
        if blocked:
            return blocked
        try:
            click = await _click(request, "open")
        except (TokenError, LinkGone) as exc:
            return refusal(request, exc)
        assert click.paper is not None  # nosec B101  # an open link always resolves to a paper (else LinkGone)
        return RedirectResponse(open_target(click.paper), status_code=303)

    async def unsubscribe(request: Request) -> Response:
        blocked = limited(request)
        if blocked:
            return blocked
        try:
            return await _unsubscribe(request)
        except (TokenError, LinkGone) as exc:
            return refusal(request, exc)
        except ClientDisconnect:  # the client left before its body arrived: nobody to answer
            log.debug("a client left during its unsubscribe request")
            return Response(status_code=400)

    async def _unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "POST":
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return page("Request too large", ["The request body is too large."], 413, request)
            if not _one_click(request.headers.get("content-type", ""), body, request.query_params.get("List-Unsubscribe")):
                return page("Not unsubscribed", ["Use the button on the unsubscribe page."], 400, request)
            click = site.unsubscribe(token)
            log.info("user %d unsubscribed", click.link.user_id)
            return page("You are unsubscribed", ["You will get no more digests. "
                        "To receive them again, ask the operator to run `recommender users resubscribe`."])
        site.resolve(token, "unsubscribe")
        return page("Unsubscribe from the paper digest?", ["You will get no more digests at this address."],
                    form=(f"/unsubscribe/{token}", "Unsubscribe", [("List-Unsubscribe", "One-Click")], ""))

    @guarded
    def view_digest(request: Request) -> Response:
        blocked = limited(request)
        if blocked:
            return blocked
        return HTMLResponse(site.digest_page(request.path_params["token"]))

    def feed(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        blocked = limited(request)
        if blocked:
            return blocked
        try:
            answer = site.feed(request.path_params["token"], request.headers.get("if-none-match"),
                                  request.headers.get("if-modified-since"))
        except FeedGone:
            return page("Not found", ["There is nothing at this address."], 404, request)
        headers = {"ETag": answer.etag, "Last-Modified": answer.last_modified, "Cache-Control": "private, no-cache"}
        if answer.status == 304:
            return Response(status_code=304, headers=headers)
        return Response(answer.body, media_type=ATOM_TYPE, headers=headers)

    routes = [
        Route("/", home, methods=["GET", "HEAD"]),
        Route("/feedback/undo/{token}", undo, methods=["POST"]),
        Route("/feedback/{action:str}/{token}", feedback, methods=["GET", "HEAD"]),
        Route("/open/{token}", open_paper, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "HEAD", "POST"]),
        Route("/digest/{token}", view_digest, methods=["GET", "HEAD"]),
        Route("/feed/{token}", feed, methods=["GET", "HEAD"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        answer = page("Not found" if code == 404 else "Not allowed", ["There is nothing at this address."], code,
                      request)
        answer.headers.update(getattr(exc, "headers", None) or {})  # a 405's Allow (RFC 9110)
        return answer

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("request %s failed: %s: %s", request.scope.get("state", {}).get("request_id"),
                  type(exc).__name__, exc)
        return page("Something went wrong", ["Please try again later."], 500, request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.checkpoints = site.start()  # clicks never wait on a checkpoint's fsync
        try:
            yield
        finally:
            site.close()  # commits the clicks still queued

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found, 500: server_error},
                    lifespan=lifespan)
    # No redirect to the address without a trailing slash: Starlette builds it from the
    # request's Host header, which would send the link's token to whatever host a client names.
    app.router.redirect_slashes = False
    # Outside Starlette's own error middleware, so a 500 page carries the headers too.
    return SecurityHeaders(app)


def _stripped(payload: object) -> bytes:
    return payload.strip() if isinstance(payload, bytes) else b""
