"""A reader's private Atom feed (RFC 4287): each entry one paper as the digest shows it,
with an id that stays the same however often it is picked (so a feed reader shows it
once) and the time it was picked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from recommender.base.domain import Paper
from recommender.base.text import one_line
from recommender.digest.render import TEMPLATES, Links, paper_fields

GENERATOR = "recommender paper digest"
ENTRY_AUTHORS = 10  # <author> elements per entry; the content shows the digest's shortened list


@dataclass(frozen=True)
class FeedPick:
    """One stored pick: the digest (its id and time) and the entry's place in it."""

    digest_id: int
    picked_at: datetime
    position: int
    paper: Paper
    why: str


@dataclass(frozen=True, slots=True)
class FeedEntry:
    id: str
    title: str
    open_url: str
    more_url: str
    less_url: str
    picked: str
    author_names: tuple[str, ...]
    authors: str
    snippet: str
    why: str


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def feed_id(base_url: str, user_id: int) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}/feed/{user_id}").urn


def entry_id(base_url: str, user_id: int, paper_id: str) -> str:
    """The same for every pick of a paper for a reader: a feed reader shows it once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}/feed/{user_id}/{paper_id}").urn


def render_feed(base_url: str, self_url: str, title: str, user_id: int, updated: datetime,
                picks: Sequence[FeedPick], links_for: dict[int, Links]) -> str:
    """The feed's XML; ``picks`` newest first, a paper picked again shown once (its newest
    pick). ``links_for`` holds each digest's links (signed as its email's were)."""
    entries = []
    seen: set[str] = set()
    for pick in picks:
        if pick.paper.id in seen:
            continue
        seen.add(pick.paper.id)
        shown = paper_fields(pick.paper)
        links = links_for[pick.digest_id]
        entries.append(FeedEntry(
            id=entry_id(base_url, user_id, pick.paper.id),
            title=shown.title,
            open_url=links.open(pick.position),
            more_url=links.more(pick.position),
            less_url=links.less(pick.position),
            picked=rfc3339(pick.picked_at),
            author_names=tuple(n for n in (one_line(a) for a in pick.paper.display.authors[:ENTRY_AUTHORS]) if n),
            authors=shown.authors,
            snippet=shown.snippet,
            why=one_line(pick.why),
        ))
    return TEMPLATES.get_template("feed.atom.j2").render(
        feed_id=feed_id(base_url, user_id), title=title, updated=rfc3339(updated), self_url=self_url,
        generator=GENERATOR, entries=entries)
