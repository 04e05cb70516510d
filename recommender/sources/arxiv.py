"""arXiv listings: the RSS feed of a category (new and cross-list announcements; replacements
of old papers skipped unless asked for) or the Atom export API. Ids are stored without their
version suffix, so a v2 is the same paper."""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import TYPE_CHECKING

from recommender.domain import ParsedBatch, ParsedPaper
from recommender.errors import InputError
from recommender.text import arxiv_id, one_line

if TYPE_CHECKING:
    import feedparser

log = logging.getLogger(__name__)
_ANNOUNCE = re.compile(r"Announce Type:\s*([\w-]+)", re.IGNORECASE)
_ABSTRACT = re.compile(r"^.*?Abstract:\s*", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def _authors(entry: feedparser.FeedParserDict) -> tuple[str, ...]:
    names = [a.get("name", "") for a in entry.get("authors", []) if a.get("name")]
    if len(names) == 1 and "," in names[0]:  # RSS: one dc:creator with every name
        names = names[0].split(",")
    return tuple(one_line(n) for n in names if n.strip())


def parse(data: bytes, name: str, batch_date: date | None = None, include_replacements: bool = False) -> ParsedBatch:
    if not data.strip():
        raise InputError(name, "empty response: no arXiv entries")
    import feedparser  # on use: every other command's start-up is spared it

    feed = feedparser.parse(data)
    if not feed.get("version"):
        reason = feed.get("bozo_exception")
        raise InputError(name, "not an RSS or Atom feed" + (f" ({one_line(str(reason))[:120]})" if reason else ""))
    entries = []
    for index, entry in enumerate(feed.entries, start=1):
        identifier = arxiv_id(entry.get("id", "")) or arxiv_id(entry.get("link", ""))
        summary = entry.get("summary", "") or ""
        announce = _ANNOUNCE.search(summary)
        kind = announce.group(1).lower() if announce else "new"
        if kind.startswith("replace") and not include_replacements:
            continue
        abstract = one_line(_TAGS.sub(" ", _ABSTRACT.sub("", summary) if announce else summary))
        title = one_line(entry.get("title", ""))
        if not identifier or not (title or abstract):
            log.warning("%s: entry %d (%s) lacks an arXiv id or text; skipped", name, index, title[:60])
            continue
        entries.append(ParsedPaper(
            title=title, abstract=abstract, authors=_authors(entry), url=f"https://arxiv.org/abs/{identifier}",
            arxiv_id=identifier, published=entry.get("published", "") or entry.get("updated", ""), line=index,
        ))
    return ParsedBatch(format="arxiv", entries=tuple(entries), batch_date=batch_date)
