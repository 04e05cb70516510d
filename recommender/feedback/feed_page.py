"""A reader's feed as the web app serves it: the signed URL checked against the reader's
current feed number (so a rotated URL is gone), a validator pair for conditional GET read
from two small queries before anything is rendered, then the Atom document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from recommender.base.config import Channel, Config, UserConfig
from recommender.base.link_signing import LinkSigner, TokenError
from recommender.digest.feed import FeedPick, render_feed
from recommender.digest.render import Links
from recommender.store import Store
from recommender.store.feeds import FeedRows

ATOM_TYPE = "application/atom+xml; charset=utf-8"


class FeedGone(Exception):
    """A forged, revoked or unknown feed URL: answered 404, nothing recorded."""


def feed_url(base_url: str, signer: LinkSigner, user_id: int, generation: int) -> str:
    return f"{base_url}/feed/{signer.sign_link('feed', user_id, generation, -1, 0)}"


@dataclass(frozen=True)
class FeedAnswer:
    status: int  # 200, or 304 (not modified)
    etag: str
    last_modified: str
    body: str = ""


class FeedPages:
    def __init__(self, config: Config, store: Store, signer: LinkSigner):
        self.config = config
        self.rows = FeedRows(store)
        self.signer = signer
        self.users = {u.email.lower(): u for u in config.users if Channel.FEED in u.channels}

    def answer(self, token: str, if_none_match: str | None, if_modified_since: str | None) -> FeedAnswer:
        try:
            link = self.signer.verify(token)  # no expiry: a feed URL lives until it is rotated
        except TokenError:
            raise FeedGone("invalid feed URL") from None
        reader = self.rows.reader_and_head(link.user_id) if link.action == "feed" else None
        if reader is None or reader.generation != link.digest_id:
            raise FeedGone("unknown or revoked feed URL")
        user = self.users.get(reader.email)
        if user is None:
            raise FeedGone("this reader has no feed")
        head = reader.head
        updated = head.updated if head is not None else reader.created_at
        etag = f'"{reader.id}-{reader.generation}-{head.newest_id if head else 0}-{head.digests if head else 0}"'
        last_modified = format_datetime(updated.replace(microsecond=0), usegmt=True)
        if _not_modified(etag, updated, if_none_match, if_modified_since):
            return FeedAnswer(304, etag, last_modified)
        body = self._render(token, user, reader.id, updated)
        return FeedAnswer(200, etag, last_modified, body)

    def _render(self, token: str, user: UserConfig, user_id: int, updated: datetime) -> str:
        entries = self.rows.entries(user_id)
        base = self.config.feedback.base_url
        links = {e.digest_id: Links(base, self.signer, user_id, e.digest_id, int(e.picked_at.timestamp()))
                 for e in entries}
        picks = [FeedPick(e.digest_id, e.picked_at, e.position, e.paper, e.why) for e in entries]
        return render_feed(base, f"{base}/feed/{token}", f"Papers for {user.name or user.email}", user_id, updated,
                           picks, links)


def _not_modified(etag: str, updated: datetime, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since."""
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, OverflowError):  # OverflowError: a year beyond any calendar
            return False
        return since.tzinfo is not None and updated.replace(microsecond=0) <= since
    return False
