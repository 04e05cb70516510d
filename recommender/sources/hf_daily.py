"""Hugging Face Daily Papers JSON: a list of entries, each with a ``paper`` object carrying the
arXiv ``id``, ``title``, ``summary``, ``authors[].name`` and ``publishedAt``. Unknown fields are
ignored; an entry missing its id or text is skipped with a warning naming it."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, one_line
from recommender.sources.jsonl import authors_of
from recommender.sources.lines import json_document

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _entry(item: Any, index: int, name: str) -> ParsedPaper | None:
    paper = item.get("paper") if isinstance(item, dict) else None
    if not isinstance(paper, dict):
        log.warning("%s: entry %d has no 'paper' object; skipped", name, index)
        return None
    raw_id = paper.get("id")
    arxiv = arxiv_id(str(raw_id)) if isinstance(raw_id, (str, int)) else ""
    title = one_line(readable(_text(paper.get("title") or item.get("title"))))
    summary = one_line(readable(_text(paper.get("summary") or item.get("summary"))))
    if not arxiv or not (title or summary):
        log.warning("%s: entry %d (%s) lacks an arXiv id or text; skipped", name, index, title[:60] or raw_id)
        return None
    try:
        authors = authors_of(paper.get("authors"), name, index)
    except InputError:
        authors = ()
    published = paper.get("publishedAt") or item.get("publishedAt") or ""
    return ParsedPaper(title=title, abstract=summary, authors=authors, url=f"https://arxiv.org/abs/{arxiv}",
                       arxiv_id=arxiv, published=str(published), line=index)


def parse(data: bytes, name: str, batch_date: date | None = None) -> ParsedBatch:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(name, "not valid UTF-8") from None
    document = json_document(text, name)
    if isinstance(document, dict) and isinstance(document.get("papers"), list):
        document = document["papers"]
    if not isinstance(document, list):
        raise InputError(name, "expected a JSON list of daily-paper entries")
    entries = [p for i, item in enumerate(document, start=1) if (p := _entry(item, i, name)) is not None]
    if document and not entries:
        raise InputError(name, "no usable daily-paper entries")  # a day with papers, none of them readable
    return ParsedBatch(format="hf_daily", entries=tuple(entries), batch_date=batch_date)


def looks_like(head: bytes) -> bool:
    return head.startswith(b"[")


def read(data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
    return parse(data, name, batch_date=hints.batch_date)
