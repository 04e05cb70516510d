"""A digest (or a group's picks) as webhook request bodies: Slack Block Kit messages, Discord
embeds, or the documented JSON payload. Each kind's limits are kept here, splitting into
several bodies where one message cannot hold the picks.

Limits followed (the platforms' documentation):
  Slack: 50 blocks per message, a header's text 150 characters, a section's 3,000; ``&``,
  ``<`` and ``>`` escaped in mrkdwn.
  Discord: 10 embeds per message and 6,000 characters across them (title, description,
  footer, author); title 256, description 4,096, footer 2,048, author name 256; content 2,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recommender.base.settings import WebhookKind
from recommender.digest.feed import rfc3339

JSON_SCHEMA = "recommender.digest.v1"
SLACK_MAX_BLOCKS = 50
SLACK_HEADER_CHARS = 150
SLACK_SECTION_CHARS = 3000
DISCORD_MAX_EMBEDS = 10
DISCORD_TOTAL_CHARS = 6000
DISCORD_LIMITS = {"title": 256, "description": 4096, "footer": 2048, "author": 256, "content": 2000}
DISCORD_COLOUR = 0x2B6CB0


@dataclass(frozen=True)
class PostPaper:
    id: str
    title: str
    url: str  # the /open/ link of a reader's own post; the paper's page in a group's post
    authors: tuple[str, ...]
    authors_shown: str
    snippet: str
    why: str
    score: float
    readers: int = 1  # how many of the group's readers it was picked for
    more_url: str = ""
    less_url: str = ""


@dataclass(frozen=True)
class Post:
    key: str  # the digest's Message-ID for a reader's own post; the group's run for a group
    webhook: str
    heading: str
    created_at: datetime
    readers: int
    papers: Sequence[PostPaper]


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def picked_for(paper: PostPaper, readers: int) -> str:
    return f"picked for {paper.readers} of {readers} readers" if readers > 1 else ""


# -- Slack ------------------------------------------------------------------------------------
def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    return f"<{url}|{_mrkdwn(label).replace('|', '¦')}>"


def slack_messages(post: Post) -> list[dict[str, Any]]:
    header = {"type": "header", "text": {"type": "plain_text", "text": cut(post.heading, SLACK_HEADER_CHARS)}}
    blocks: list[dict[str, Any]] = []
    for paper in post.papers:
        lines = [f"*{_slack_link(paper.url, paper.title)}*", _mrkdwn(paper.authors_shown)]
        tail = [f"_{_mrkdwn(paper.why)}_"] + ([_mrkdwn(picked_for(paper, post.readers))] if post.readers > 1 else [])
        room = SLACK_SECTION_CHARS - sum(len(x) + 1 for x in lines + tail)
        text = "\n".join(lines + [cut(_mrkdwn(paper.snippet), max(room, 0))] + tail) if room > 20 else "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SLACK_SECTION_CHARS)}})
        if paper.more_url:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"{_slack_link(paper.more_url, 'More like this')} · {_slack_link(paper.less_url, 'Fewer like this')}")}]})
        blocks.append({"type": "divider"})
    messages: list[dict[str, Any]] = []
    per_message = SLACK_MAX_BLOCKS - 1  # one for the header
    for start in range(0, max(len(blocks), 1), per_message):
        part = blocks[start:start + per_message]
        messages.append({"text": cut(post.heading, 3000), "blocks": [header, *part], "unfurl_links": False})
    return messages


# -- Discord ----------------------------------------------------------------------------------
def _discord_embed(paper: PostPaper, readers: int) -> dict[str, Any]:
    links = f"\n\n[More like this]({paper.more_url}) · [Fewer like this]({paper.less_url})" if paper.more_url else ""
    footer = cut(paper.why + (f" ({picked_for(paper, readers)})" if readers > 1 else ""), DISCORD_LIMITS["footer"])
    title = cut(paper.title, DISCORD_LIMITS["title"])
    author = cut(paper.authors_shown, DISCORD_LIMITS["author"])
    # One embed alone must fit the message's 6,000 too: the description takes what is left.
    room = min(DISCORD_LIMITS["description"], DISCORD_TOTAL_CHARS - len(title) - len(footer) - len(author))
    embed: dict[str, Any] = {
        "title": title,
        "url": paper.url,
        "description": cut(paper.snippet, room - len(links)) + links,  # the links kept whole
        "color": DISCORD_COLOUR,
        "footer": {"text": footer},
    }
    if author:
        embed["author"] = {"name": author}
    return embed


def embed_chars(embed: dict[str, Any]) -> int:
    """The characters Discord counts toward a message's 6,000."""
    return (len(embed.get("title", "")) + len(embed.get("description", ""))
            + len(embed.get("footer", {}).get("text", "")) + len(embed.get("author", {}).get("name", ""))
            + sum(len(f.get("name", "")) + len(f.get("value", "")) for f in embed.get("fields", [])))


def discord_messages(post: Post) -> list[dict[str, Any]]:
    groups: list[list[dict[str, Any]]] = [[]]
    used = 0
    for paper in post.papers:
        embed = _discord_embed(paper, post.readers)
        size = embed_chars(embed)
        if groups[-1] and (len(groups[-1]) == DISCORD_MAX_EMBEDS or used + size > DISCORD_TOTAL_CHARS):
            groups.append([])
            used = 0
        groups[-1].append(embed)
        used += size
    messages = []
    for number, embeds in enumerate(groups, 1):
        heading = post.heading if len(groups) == 1 else f"{post.heading} ({number}/{len(groups)})"
        messages.append({"content": cut(heading, DISCORD_LIMITS["content"]), "embeds": embeds,
                         "allowed_mentions": {"parse": []}})
    return messages


# -- JSON -------------------------------------------------------------------------------------
def json_payload(post: Post) -> list[dict[str, Any]]:
    """One body; its fields are documented in README's "Channels"."""
    return [{
        "schema": JSON_SCHEMA,
        "id": post.key,
        "webhook": post.webhook,
        "heading": post.heading,
        "created_at": rfc3339(post.created_at),
        "readers": post.readers,
        "papers": [{"id": p.id, "title": p.title, "url": p.url, "authors": list(p.authors), "snippet": p.snippet,
                    "why": p.why, "score": round(p.score, 4), "readers": p.readers,
                    **({"more_url": p.more_url, "less_url": p.less_url} if p.more_url else {})}
                   for p in post.papers],
    }]


BUILDERS = {WebhookKind.SLACK: slack_messages, WebhookKind.DISCORD: discord_messages, WebhookKind.JSON: json_payload}


def request_bodies(kind: WebhookKind, post: Post) -> list[dict[str, Any]]:
    return BUILDERS[kind](post)
