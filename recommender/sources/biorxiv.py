"""bioRxiv and medRxiv through their public API, ``/details/{server}/{from}/{to}/{cursor}``:
an answer is one page of a date range, ``messages[0]`` says where the page starts
(``cursor``), how many papers it holds (``count``) and how many the range has (``total``);
``collection`` holds the papers: ``doi`` (one per paper, every version), ``version``,
``title``, ``authors`` ("Surname, I.; Surname, I."), ``date``, ``category``, ``abstract`` and
``published`` (the journal version's DOI, or "NA").

Every version of a preprint is the same paper (its versionless DOI); versions after the first
are left out unless the source includes replacements, as for arXiv. A preprint that is
published carries its journal DOI as a second id, so the journal's feed names the same paper.

The fetch side is two pure functions the fetcher calls: ``first_urls`` (one per subject, or
one for the whole server) and ``next_url`` (from the page just read), so paging is tested
against recorded answers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from recommender.base.author_names import first_last
from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError
from recommender.base.markup import plain
from recommender.base.text import doi, one_line

log = logging.getLogger(__name__)
API_URL = "https://api.biorxiv.org"
SERVERS = ("biorxiv", "medrxiv")
MAX_PAGES = 500  # a range of 50,000 papers: far beyond a week of one server
# bioRxiv flattens JATS markup of abstracts into tokens: O_ST_ABS/C_ST_ABS around a heading,
# O_LI/C_LI around list items, O_SCPLOW/C_SCPLOW around small capitals, O_FIG..., O_TBL...
_JATS_TOKEN = re.compile(r"[OC]_(?:ST_ABS|LI|SCPLOW|SCPCAP|FIG(?:_DISPLAY)?|TBL|FLOAT_NO|LINKOUT|ITALIC|BOLD)")
_SPACES = re.compile(r"\s{2,}")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def abstract_text(value: str) -> str:
    """An abstract as the API gives it, without HTML and bioRxiv's flattening tokens."""
    return _SPACES.sub(" ", _JATS_TOKEN.sub(" ", plain(value))).strip()


def people(authors: str) -> tuple[str, ...]:
    """"Surname, I.; Surname, I. J." as ("I. Surname", "I. J. Surname")."""
    return tuple(name for raw in authors.split(";") if (name := first_last(plain(raw)).strip(" ,.") or ""))


def _entry(item: Any, index: int, name: str, hints: ReadHints, wanted: set[str]) -> ParsedPaper | None:
    if not isinstance(item, dict):
        log.warning("%s: entry %d is not an object; skipped", name, index)
        return None
    paper_doi = doi(_text(item.get("doi")))
    title = one_line(plain(_text(item.get("title"))))
    if not paper_doi or not title:
        log.warning("%s: entry %d (%s) has no DOI or title; skipped", name, index, title[:60] or item.get("doi"))
        return None
    category = _text(item.get("category")).lower()
    if wanted and category.replace("_", " ") not in wanted:
        return None
    version = _text(item.get("version")) or "1"
    if version not in ("", "1") and not hints.include_replacements:
        return None
    server = _text(item.get("server")).lower() or "biorxiv"
    host = "www.medrxiv.org" if server == "medrxiv" else "www.biorxiv.org"
    published = doi(_text(item.get("published")))
    return ParsedPaper(title=title, abstract=abstract_text(_text(item.get("abstract"))),
                       authors=people(_text(item.get("authors"))), url=f"https://{host}/content/{paper_doi}v{version}",
                       published=_text(item.get("date")), line=index, doi=paper_doi,
                       other_ids=(published,) if published and published != paper_doi else ())


def _document(data: bytes, name: str) -> dict[str, Any]:
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(name, "not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(name, f"not a bioRxiv API answer: invalid JSON ({exc.msg})", exc.lineno) from None
    if not isinstance(document, dict) or not isinstance(document.get("collection", []), list):
        raise InputError(name, "not a bioRxiv API answer: expected an object with a 'collection' list")
    messages = document.get("messages")
    message = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
    status = _text(message.get("status")) or "ok"
    if status != "ok" and not document.get("collection"):
        if "no posts found" in status.lower():  # an empty range: the API's way of saying "nothing"
            return {"collection": [], "messages": [message]}
        raise InputError(name, f"the bioRxiv API answered an error: {status}")
    return document


def parse(data: bytes, name: str, hints: ReadHints | None = None) -> ParsedBatch:
    hints = hints or ReadHints()
    document = _document(data, name)
    wanted = {c.lower().replace("_", " ") for c in hints.categories}
    entries = [p for i, item in enumerate(document.get("collection") or [], start=1)
               if (p := _entry(item, i, name, hints, wanted)) is not None]
    return ParsedBatch(format="biorxiv", entries=tuple(entries), batch_date=hints.batch_date)


def looks_like(head: bytes) -> bool:
    return head.startswith(b"{") and b'"collection"' in head and (b'"messages"' in head or b'"doi"' in head)


def read(data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
    return parse(data, name, hints)


def first_urls(base_url: str, server: str, today: date, days: int, categories: Sequence[str]) -> list[str]:
    """The first page of the last ``days`` days (today included), one per subject asked for."""
    start = today - timedelta(days=max(days, 1) - 1)
    root = f"{(base_url or API_URL).rstrip('/')}/details/{server}/{start.isoformat()}/{today.isoformat()}/0"
    if not categories:
        return [root]
    return [f"{root}?category={quote(c.strip().lower().replace(' ', '_'))}" for c in categories]


def next_url(url: str, data: bytes, pages: int) -> str | None:
    """The next page after the answer ``data`` to ``url`` (the ``pages``-th read), or None."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
        message = document.get("messages", [{}])[0]
        count = int(message.get("count") or len(document.get("collection") or []))  # "count" is not always there
        cursor, total = int(message.get("cursor", 0)), int(message.get("total", 0))
    except (ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError):
        return None
    if count <= 0 or cursor + count >= total:
        return None
    if pages >= MAX_PAGES:
        log.warning("%s: stopped after %d pages of %d papers", url, pages, total)
        return None
    parts = urlsplit(url)
    head, _, _ = parts.path.rstrip("/").rpartition("/")
    return urlunsplit(parts._replace(path=f"{head}/{cursor + count}"))
