"""Parsers: bytes in, ParsedBatch out. Fetching lives apart (recommender/fetch.py) so every
parser can be tested on saved files."""

from __future__ import annotations

from collections import deque
from datetime import date, datetime
from types import ModuleType

from recommender.domain import ParsedBatch
from recommender.errors import InputError
from recommender.sources import arxiv, bibtex, hf_daily, jsonl, ris, trending_page, zotero_csv
from recommender.sources.library_read import LibraryRead
from recommender.sources.lines import decoded_lines

FORMATS = ("trending_page", "jsonl", "hf_daily", "arxiv")
# Reference-manager libraries (stars to import): each reader has NAME, looks_like(head) and
# read(data, name) -> LibraryRead. A new format is one module and one line here.
LIBRARY_READERS: dict[str, ModuleType] = {reader.NAME: reader for reader in (bibtex, zotero_csv, ris)}
LIBRARY_FORMATS = tuple(LIBRARY_READERS)


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


def detect_library_format(data: bytes, name: str) -> str:
    head = data[:8192]
    for reader_name in ("ris", "csv", "bibtex"):  # RIS and CSV first: a CSV cell may hold an "@"
        if LIBRARY_READERS[reader_name].looks_like(head):
            return reader_name
    raise InputError(name, "not a known library format (expected BibTeX, a Zotero CSV export or RIS)")


def read_library(data: bytes, name: str, fmt: str = "auto") -> LibraryRead:
    """The entries of one reference-manager export (and those it had to skip)."""
    if fmt == "auto":
        fmt = detect_library_format(data, name)
    if fmt not in LIBRARY_READERS:
        raise InputError(name, f"unknown library format {fmt!r} (expected one of auto, {', '.join(LIBRARY_FORMATS)})")
    return LIBRARY_READERS[fmt].read(data, name)
