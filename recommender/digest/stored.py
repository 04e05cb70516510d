"""A stored digest rendered again from what it is: its entries (paper, score, reason, match,
topic), its Message-ID and the time it is dated. The same bytes every time for the same
papers, settings and secret: the date and the links' issue time are stored, the MIME boundary
follows from the Message-ID, and the links are signed deterministically."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime

from recommender.base.config import Config, UserConfig
from recommender.base.domain import Explanation, Paper, Recommendation
from recommender.base.link_signing import LinkSigner
from recommender.digest import render as digest
from recommender.digest.message import build_message
from recommender.store.outbox import StoredEntry


def stored_explanation(why: str) -> Explanation:
    return Explanation(personalized=not why.startswith("Not personalized"), stored=why)


def stored_picks(user: UserConfig, entries: Sequence[StoredEntry], papers: Mapping[str, Paper]) -> list[Recommendation]:
    """The digest's picks as they were made (entries whose paper is gone left out)."""
    return [Recommendation(user.email, papers[e.paper_id], e.score, e.position + 1,
                           functools.partial(stored_explanation, e.why), match=e.match, topic=e.topic)
            for e in entries if e.paper_id in papers]


def links_for(config: Config, signer: LinkSigner, user_id: int, digest_id: int, dated_at: datetime) -> digest.Links:
    """The digest's links, all issued at the time it is dated."""
    return digest.Links(config.feedback.base_url, signer, user_id, digest_id, int(dated_at.timestamp()))


def message_for(config: Config, signer: LinkSigner, user: UserConfig, user_id: int, digest_id: int,
                message_id: str, picks: list[Recommendation], dated_at: datetime) -> bytes:
    """The digest's mail message, as it is sent (before any DKIM signature)."""
    links = links_for(config, signer, user_id, digest_id, dated_at)
    rendered = digest.render(digest.context(config, user, picks, links, dated_at))
    return build_message(config.smtp, user, rendered, message_id, links.unsubscribe(),
                         config.feedback.unsubscribe_mailto, dated_at)
