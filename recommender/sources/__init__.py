"""Parsers: bytes in, ParsedBatch out. Fetching lives apart (recommender/fetch.py) so every
parser can be tested on saved files."""

from __future__ import annotations

from collections import deque
from datetime import date, datetime

from recommender.domain import ParsedBatch
from recommender.errors import InputError
from recommender.sources import arxiv, hf_daily, jsonl, trending_page
from recommender.sources.lines import decoded_lines

FORMATS = ("trending_page", "jsonl", "hf_daily", "arxiv")


def detect_format(data: bytes, name: str) -> str:
    """Guess the format from the first meaningful bytes; fail clearly when none fits."""
    deque(decoded_lines(data, name), maxlen=0)  # a line that is not UTF-8 (or binary) refuses the file first
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:4096]
    if not head:
        raise InputError(name, "empty file: no digest entries to ingest")
    if head.startswith(b"{"):
        return "jsonl"
    if head.startswith(b"["):
        return "hf_daily"
    if head.startswith(b"<"):
        return "arxiv"
    if trending_page.looks_like(head):
        return "trending_page"
    raise InputError(
        name, "not a known digest format (expected a trending page, JSONL, Hugging Face daily JSON or arXiv RSS/Atom)"
    )


def parse(data: bytes, name: str, fmt: str = "auto", year_hint: date | None = None,
          modified: datetime | None = None, include_replacements: bool = False) -> ParsedBatch:
    """Parse one file's bytes in ``fmt`` (or the detected format)."""
    if fmt == "auto":
        fmt = detect_format(data, name)
    if fmt == "trending_page":
        return trending_page.parse(data, name, year_hint=year_hint, modified=modified)
    if fmt == "jsonl":
        return jsonl.parse(data, name, batch_date=year_hint)
    if fmt == "hf_daily":
        return hf_daily.parse(data, name, batch_date=year_hint)
    if fmt == "arxiv":
        return arxiv.parse(data, name, batch_date=year_hint, include_replacements=include_replacements)
    raise InputError(name, f"unknown format {fmt!r} (expected one of auto, {', '.join(FORMATS)})")
