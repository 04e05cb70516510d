"""Channels beyond email, wired: which channels a reader's digest is made for, the webhook
posts owed after a run (a reader's own post, or one post per run for a group of readers
sharing a webhook: each paper once, with how many of them it was picked for), and their
delivery through the posts' outbox. The feed needs no delivery: the web app serves the
digests made for it (feedback.feed_page)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from recommender.base.clock import Clock
from recommender.base.config import Channel, Config, UserConfig, WebhookConfig
from recommender.base.domain import DeliveryStatus, DigestStatus, Paper, ReaderIds
from recommender.base.link_signing import LinkSigner
from recommender.base.text import one_line
from recommender.delivery.webhooks import PostOutcome, WebhookSender
from recommender.digest.posts import Post, PostPaper, request_bodies
from recommender.digest.render import Links, paper_fields
from recommender.feedback.clicks import open_target
from recommender.feedback.feed_page import feed_url as signed_feed_url
from recommender.store import Store
from recommender.store.channel_posts import ChannelPosts
from recommender.store.feeds import FeedRows
from recommender.store.lease_owners import new_owner
from recommender.store.outbox import Outbox
from recommender.store.reader_settings import ReaderSettings

log = logging.getLogger(__name__)
POST_LEASE = timedelta(minutes=10)


def digest_channels(user: UserConfig) -> tuple[str, ...]:
    """What a digest records of its reader's channels: email, feed, webhook:NAME."""
    return tuple(f"webhook:{user.webhook}" if c == Channel.WEBHOOK else c for c in user.channels)


def feed_url(config: Config, store: Store, signer: LinkSigner, user: UserConfig, rotate: bool = False) -> str:
    """The reader's private feed URL; with ``rotate``, a new one (the old answers 404 from now on)."""
    user_id = store.sync_users([user.email]).of(user.email)
    rows = FeedRows(store)
    if rotate:
        generation = rows.rotate(user_id)
        log.info("feed URL of user %d rotated", user_id)
    else:
        reader = rows.reader(user_id)
        generation = reader.generation if reader is not None else 0
    return signed_feed_url(config.feedback.base_url, signer, user_id, generation)


def webhook_members(config: Config, store: Store) -> dict[str, list[UserConfig]]:
    """Webhook name -> its readers: the config's, or (a worker's config, loaded without its
    readers) those the database keeps."""
    if config.readers_in_store:
        return ReaderSettings(store).webhook_members()
    found: dict[str, list[UserConfig]] = {}
    for user in config.users:
        if Channel.WEBHOOK in user.channels and user.webhook:
            found.setdefault(user.webhook, []).append(user)
    return found


@dataclass
class _Pick:
    paper: Paper
    score: float
    why: str
    readers: set[int]
    position: int
    digest_id: int


def queue_posts(config: Config, store: Store, signer: LinkSigner, clock: Clock) -> list[int]:
    """Store a post for each webhook owed digests (made for it and covered by no post yet):
    after a run, and again at the next one if a run stopped before. Returns the posts' ids."""
    posts = ChannelPosts(store)
    outbox = Outbox(store)
    created = []
    for name, members in webhook_members(config, store).items():
        owed = posts.owed(name)
        if not owed:
            continue
        hook = config.webhook(name)
        digests = posts.digests(owed)
        picks: dict[str, _Pick] = {}
        for digest_id, user_id, _, _ in digests:
            entries = outbox.entries(digest_id)
            papers = {p.id: p for p in store.papers([e[1] for e in entries])}
            for position, paper_id, score, why, _match in entries:
                if paper_id not in papers:
                    continue
                pick = picks.setdefault(paper_id, _Pick(papers[paper_id], score, why, set(), position, digest_id))
                pick.readers.add(user_id)
                pick.score = max(pick.score, score)
        readers = {d[1] for d in digests}
        own = len(readers) == 1 and len(members) == 1  # a reader's own channel: their digest's links
        limit = max(u.max_items for u in members)
        chosen = sorted(picks.values(), key=lambda p: (-len(p.readers), -p.score))[:limit if not own else None]
        newest = digests[-1]
        heading = _heading(members, own, len(chosen), clock())
        post = Post(key=newest[2] if own else f"<{name}.{digests[0][0]}-{newest[0]}@recommender>", webhook=name,
                    heading=heading, created_at=clock(), readers=len(readers),
                    papers=[_post_paper(config, signer, p, newest[1], own, digests) for p in chosen])
        post_id = posts.create(name, owed, request_bodies(hook.kind, post), len(chosen))
        if post_id is not None:
            created.append(post_id)
            log.info("queued post %d for webhook %s: %d paper(s) from %d digest(s)", post_id, name, len(chosen),
                     len(owed))
    return created


def _heading(members: Sequence[UserConfig], own: bool, count: int, now: datetime) -> str:
    noun = "paper" if count == 1 else "papers"
    if own:
        user = members[0]
        return f"{count} new {noun} for {one_line(user.name) or user.email} — {now.day} {now:%b}"
    return f"{count} {noun} picked for the group — {now.day} {now:%b}"


def _post_paper(config: Config, signer: LinkSigner, pick: _Pick, user_id: int, own: bool,
                digests: Sequence[tuple[int, int, str, datetime]]) -> PostPaper:
    shown = paper_fields(pick.paper)
    more = less = ""
    url = open_target(pick.paper)
    if own:  # the reader's own links, signed as their digest's were
        created = next(d[3] for d in digests if d[0] == pick.digest_id)
        links = Links(config.feedback.base_url, signer, user_id, pick.digest_id, int(created.timestamp()))
        url, more, less = links.open(pick.position), links.more(pick.position), links.less(pick.position)
    return PostPaper(id=pick.paper.id, title=shown.title, url=url, authors=pick.paper.display.authors,
                     authors_shown=shown.authors, snippet=shown.snippet, why=one_line(pick.why), score=pick.score,
                     readers=len(pick.readers), more_url=more, less_url=less)


def deliver_posts(config: Config, store: Store, clock: Clock, owner: str | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> list[PostOutcome]:
    """Send every due pending post of the configured webhooks, recording each part as it is
    accepted and each post's outcome."""
    hooks = {h.name: h for h in config.webhooks}
    if not hooks:
        return []
    posts = ChannelPosts(store)
    owner = owner or new_owner()
    outcomes: list[PostOutcome] = []
    handled: set[int] = set()
    try:
        while True:
            claimed = [c for c in posts.claim(owner, POST_LEASE, list(hooks), now=clock()) if c.id not in handled]
            if not claimed:
                break
            for post in claimed:
                handled.add(post.id)
                outcome = _send(hooks[post.webhook], posts, post.id, post.parts, post.parts_sent, clock, sleep)
                outcomes.append(outcome)
    finally:
        posts.release_owner(owner)
    return outcomes


def _send(hook: WebhookConfig, posts: ChannelPosts, post_id: int, parts: list[object], start: int, clock: Clock,
          sleep: Callable[[float], None]) -> PostOutcome:
    sender = WebhookSender(hook, sleep, clock)
    outcome = sender.send(post_id, parts, start, lambda count, reply: posts.part_sent(post_id, count, reply))
    wait = outcome.retry_after if outcome.retry_after is not None else hook.retry_delay_seconds
    posts.record(post_id, outcome.status, outcome.detail, outcome.attempts, clock() + timedelta(seconds=wait))
    if outcome.status != DeliveryStatus.SENT:
        log.warning("post %d to webhook %s %s: %s", post_id, hook.name, outcome.status, outcome.detail)
    return outcome


def channel_notes(config: Config, store: Store, users: Sequence[UserConfig], ids: ReaderIds,
                  started: datetime) -> dict[str, str]:
    """Each reader's channels beyond email after a run, for their line of `digest send`:
    "feed: published; webhook lab: sent" (or deferred, failed and why)."""
    wanted = [u for u in users if u.channels != (Channel.EMAIL,)]
    if not wanted:
        return {}
    newest = {s_user: s for s_user, s in Outbox(store).latest_states([ids.of(u.email) for u in wanted]).items()}
    posts = ChannelPosts(store).items(digest_ids=[s.id for s in newest.values()])
    post_of = {d: p for p in posts for d in p.digest_ids}
    notes: dict[str, str] = {}
    for user in wanted:
        state = newest.get(ids.of(user.email))
        if state is None or state.created_at < started:
            continue
        parts = []
        if Channel.EMAIL in user.channels:
            parts.append(f"email: {state.status}")
        if Channel.FEED in user.channels:
            parts.append("feed: published")
        if Channel.WEBHOOK in user.channels:
            post = post_of.get(state.id)
            status = "not posted yet" if post is None else post.status
            if post is not None and post.status == DigestStatus.PENDING and post.next_attempt_at is not None:
                status = f"deferred until {post.next_attempt_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            detail = f" ({post.last_error})" if post is not None and post.status != DigestStatus.SENT and post.last_error else ""
            parts.append(f"webhook {user.webhook}: {status}{detail}")
        notes[user.email] = "; ".join(parts)
    return notes
