"""The feedback endpoint's use cases over an install's store: what ``feedback.web`` (HTTP in,
pages out) calls through its ``Site`` protocol. Clicks go through the feedback stage's click
service (verified, group-committed), feeds through its feed pages; the web view of a stored
digest is put together here, from the outbox, the papers and the digest templates.
``Recommender.web_app`` and ``serve`` build the app from it."""

from __future__ import annotations

import os

from starlette.types import ASGIApp

from recommender.base.clock import Clock
from recommender.base.config import DATABASE_URL_ENV, Config, find_config_path, load_config
from recommender.base.link_signing import TokenError
from recommender.digest import render as digest
from recommender.digest.stored import stored_picks
from recommender.feedback.clicks import Click, FeedbackService, LinkGone
from recommender.feedback.feed_page import FeedAnswer, FeedPages
from recommender.feedback.web import create_app
from recommender.pipeline.reader_directory import ReaderDirectory
from recommender.store import Store
from recommender.store.checkpoints import BackgroundCheckpoints
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox


class WebSite:
    """``feedback.web.Site`` over a store: the click service, the feed pages and the digest view."""

    def __init__(self, config: Config, store: Store, clock: Clock | None = None):
        self.config = config
        self.store = store
        self.service = FeedbackService(config, store, clock)
        self.feeds = FeedPages(config, store, self.service.signer)
        self.checkpoints = BackgroundCheckpoints(store)
        self.directory = ReaderDirectory(config, store)

    async def click(self, token: str, action: str, client: str) -> Click:
        return (await self.service.click_async(token, action, client)).click

    def resolve(self, token: str, action: str) -> Click:
        return self.service.resolve(token, action)

    def undo(self, token: str) -> bool:
        action = self.service.signer.verify(token).action
        if action not in ("more", "less", "open"):
            raise TokenError("invalid link")
        return self.service.undo(self.service.resolve(token, action))

    def unsubscribe(self, token: str) -> Click:
        click = self.service.resolve(token, "unsubscribe")
        self.service.unsubscribe(click)
        return click

    def feed(self, token: str, if_none_match: str | None, if_modified_since: str | None) -> FeedAnswer:
        return self.feeds.answer(token, if_none_match, if_modified_since)

    def start(self) -> BackgroundCheckpoints:
        return self.checkpoints.start()

    def close(self) -> None:
        self.service.close()  # commits the clicks still queued
        self.checkpoints.stop()

    def digest_page(self, token: str) -> str:
        """A stored digest as a web page, with fresh signed links for each entry and what the
        reader already clicked on each paper."""
        link = self.service.resolve(token, "view").link
        entries = Outbox(self.store).stored_entries([link.digest_id]).get(link.digest_id, [])
        papers = {p.id: p for p in self.store.papers([e.paper_id for e in entries])}
        user = self.directory.one(link.user_id)
        if user is None:
            raise LinkGone("this subscriber is no longer configured")
        picks = stored_picks(user, entries, papers)
        # The page's links keep the digest's issue time: a view link near its expiry must not
        # hand out links that live another max_age_days.
        issued = int(link.issued_at.timestamp()) if link.issued_at is not None else None
        links = digest.Links(self.config.feedback.base_url, self.service.signer, link.user_id, link.digest_id, issued)
        clicked = FeedbackLog(self.store).clicked(link.user_id, [entry.paper_id for entry in entries])
        context = digest.context(self.config, user, picks, links, self.service.clock(), web=True, clicked=clicked)
        return digest.render(context).html


def web_app(config: Config, store: Store | None = None, clock: Clock | None = None) -> ASGIApp:
    """The feedback endpoint's app over ``store`` (else the config's database, opened here)."""
    store = store or Store.open(config.database.url)
    store.check_schema()
    return create_app(config, WebSite(config, store, clock))


def app_from_environment() -> ASGIApp:
    """uvicorn factory for several worker processes: the config comes from $RECOMMENDER_CONFIG."""
    return web_app(load_config(find_config_path(None), os.environ.get(DATABASE_URL_ENV)))
