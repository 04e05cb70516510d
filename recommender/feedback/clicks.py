"""What a click means: verify the link token, find the digest entry it points to, and record
the click (more / less / open), an undo, or an unsubscribe. The web app is a thin shell over this."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus, urlsplit

from recommender.base.clock import Clock, system_clock
from recommender.base.config import Config
from recommender.base.domain import Paper
from recommender.base.link_signing import (
    LinkSigner,
    LinkToken,
    PreviewLink,
    TokenError,
    check_secret,
    token_id,
)
from recommender.store import Store
from recommender.store.feedback import ClickEvent, FeedbackLog
from recommender.store.group_commit import GroupCommit
from recommender.store.outbox import Outbox

EXPIRING = ("more", "less", "open", "view")


class LinkGone(Exception):
    """The link was valid but what it points to no longer exists (a deleted paper or digest)."""


@dataclass(frozen=True)
class Click:
    token: str
    link: LinkToken
    paper: Paper | None

    @property
    def token_id(self) -> str:
        return token_id(self.token)


@dataclass(frozen=True)
class ClickResult:
    click: Click
    recorded: bool  # False: a repeat of the same link, or a link scan
    scan: bool = False


@dataclass(frozen=True)
class ClickRequest:
    token: str
    action: str
    client: str


class FeedbackService:
    def __init__(self, config: Config, store: Store, clock: Clock | None = None):
        self.config = config
        self.store = store
        self.clock = clock or system_clock
        secret = check_secret(config.feedback.secret, config.feedback.secret_env)
        self.signer = LinkSigner(secret, self.clock)
        self.log = FeedbackLog(store)
        self._clicks: GroupCommit[ClickRequest, ClickResult | TokenError | LinkGone] = GroupCommit(self._click_batch)
        self.outbox = Outbox(store)

    def resolve(self, token: str, action: str) -> Click:
        """Verify a token for ``action``; raises TokenError, TokenExpired or LinkGone."""
        link = self._verify(token, action)
        if action == "unsubscribe":
            if link.user_id not in self.store.user_ids():
                raise LinkGone("unknown subscriber")
            return Click(token, link, None)
        return _target(token, link, self.store.linked_paper(*_entry(link)))

    def _verify(self, token: str, action: str) -> LinkToken:
        if len(token) > 512:
            raise TokenError("invalid link")
        max_age = self.config.feedback.max_age_days * 86400 if action in EXPIRING else None
        link = self.signer.verify(token, max_age_seconds=max_age)
        if link.action != action:
            raise TokenError("invalid link")
        if link.digest_id == 0 and action != "unsubscribe":
            raise PreviewLink("this link comes from a preview and does nothing")
        return link

    async def click_async(self, token: str, action: str, client: str) -> ClickResult:
        """Verify a more / less / open link and record the click once (a link scan records
        nothing); raises TokenError, TokenExpired or LinkGone. Concurrent clicks are checked and
        committed together (group commit); this returns once this one is stored, waiting
        without holding a thread."""
        return _settle(await asyncio.wrap_future(self._clicks.enqueue(ClickRequest(token, action, client))))

    def _click_batch(self, requests: Sequence[ClickRequest]) -> list[ClickResult | TokenError | LinkGone]:
        """One transaction: verify every link, look up what they point to (one query), then
        record the valid clicks in order."""
        verified: list[LinkToken | TokenError | LinkGone] = []
        for request in requests:
            try:
                verified.append(self._verify(request.token, request.action))
            except TokenError as refused:
                verified.append(refused)
        with self.store.write() as connection:
            targets = self.store.linked_papers([_entry(v) for v in verified if isinstance(v, LinkToken)], connection)
            checked: list[Click | TokenError | LinkGone] = []
            for request, link in zip(requests, verified, strict=True):
                try:
                    if not isinstance(link, LinkToken):
                        raise link
                    click = _target(request.token, link, targets[_entry(link)])
                    checked.append(click if click.paper is not None else TokenError("invalid link"))
                except (TokenError, LinkGone) as refused:
                    checked.append(refused)
            now = self.clock()
            events = [ClickEvent(c.link.user_id, c.paper.id, c.link.action, c.link.digest_id, c.token_id,
                                 request.client, now)
                      for c, request in zip(checked, requests, strict=True) if isinstance(c, Click) and c.paper]
            recorded = iter(self.log.record_clicks(connection, events))
        return [ClickResult(c, *_outcome(next(recorded))) if isinstance(c, Click) else c for c in checked]

    def close(self) -> None:
        """Commit the clicks still queued."""
        self._clicks.close()

    def undo(self, click: Click) -> bool:
        return self.log.undo(click.token_id)

    def unsubscribe(self, click: Click) -> bool:
        return self.outbox.set_unsubscribed(click.link.user_id, True)


def _entry(link: LinkToken) -> tuple[int, int]:
    """The (digest, position) a link points at; links to the digest as a whole use position 0."""
    return link.digest_id, max(link.position, 0)


def _target(token: str, link: LinkToken, linked: tuple[int | None, bool, Paper | None]) -> Click:
    """The click a verified link makes, given what it points to (``Store.linked_paper``)."""
    owner, entry_exists, paper = linked
    if owner != link.user_id:
        raise LinkGone("this digest no longer exists")
    if link.position < 0:
        return Click(token, link, None)
    if not entry_exists:
        raise LinkGone("this entry no longer exists")
    if paper is None:
        raise LinkGone("this paper no longer exists")
    return Click(token, link, paper)


def _outcome(recorded: str) -> tuple[bool, bool]:
    """(recorded, scan) from the feedback log's word for a click."""
    return recorded == "recorded", recorded == "scan"


def _settle(outcome: ClickResult | TokenError | LinkGone) -> ClickResult:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def open_target(paper: Paper) -> str:
    """Where an open link goes: the arXiv abstract page, else the stored http(s) URL, else an
    arXiv title search built from the stored title. Nothing from the request takes part."""
    if paper.arxiv_id:
        return f"https://arxiv.org/abs/{paper.arxiv_id}"
    if paper.url and urlsplit(paper.url).scheme in ("http", "https") and urlsplit(paper.url).netloc:
        return paper.url
    return f"https://arxiv.org/search/?query={quote_plus(paper.title or paper.abstract[:200])}&searchtype=title"
