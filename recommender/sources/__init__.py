"""Parsers: bytes in, ParsedBatch out. Fetching lives apart (recommender/pipeline/fetching.py) so every
parser can be tested on saved files."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from importlib import import_module
from typing import Any, cast

from recommender.base.domain import LibraryRead, ParsedBatch, ReadHints
from recommender.base.errors import InputError
from recommender.base.formats import (
    DIGEST_FORMATS,
    LIBRARY_FORMATS,
    DigestFormat,
    LibraryFormat,
    PagedFormat,
)
from recommender.sources.lines import check_text, library_utf8, text_head


@cache
def _module(name: str) -> Any:
    return import_module(f"recommender.sources.{name}")


def reader(name: str) -> DigestFormat:
    """The module that reads digest format ``name`` (see recommender.base.formats), imported on
    use: a command reads one format, and some readers' libraries cost start-up time."""
    return cast(DigestFormat, _module(DIGEST_FORMATS[name]))


def paged_reader(name: str) -> PagedFormat:
    """The module that reads API format ``name`` page by page, imported on use."""
    return cast(PagedFormat, _module(DIGEST_FORMATS[name]))


def library_reader(name: str) -> LibraryFormat:
    """The module that reads library format ``name``, imported on use."""
    return cast(LibraryFormat, _module(LIBRARY_FORMATS[name]))


def detect_format(data: bytes, name: str) -> str:
    """Guess the format from the first meaningful bytes; fail clearly when none fits."""
    check_text(data, name)  # a line that is not UTF-8 (or binary) refuses the file first, but in XML that says otherwise
    head = text_head(data, 8192).lstrip(b"\xef\xbb\xbf \t\r\n")[:4096]
    if not head:
        raise InputError(name, "empty file: no digest entries to ingest")
    for fmt in DIGEST_FORMATS:
        if reader(fmt).looks_like(head):
            return fmt
    raise InputError(
        name, "not a known digest format (expected a trending page, JSONL, Hugging Face daily JSON, a bioRxiv API "
        "answer, or an RSS/Atom feed)"
    )


def parse(data: bytes, name: str, fmt: str = "auto", year_hint: date | None = None,
          modified: datetime | None = None, include_replacements: bool = False,
          hints: ReadHints | None = None) -> ParsedBatch:
    """Parse one file's bytes in ``fmt`` (or the detected format); ``hints`` (a source's
    options) replaces the three before it."""
    if fmt == "auto":
        fmt = detect_format(data, name)
    if fmt not in DIGEST_FORMATS:
        raise InputError(name, f"unknown format {fmt!r} (expected one of auto, {', '.join(DIGEST_FORMATS)})")
    return reader(fmt).read(data, name, hints or ReadHints(year_hint, modified, include_replacements))


def detect_library_format(data: bytes, name: str) -> str:
    if not data.strip():
        raise InputError(name, "empty file: no entries to import")
    head = data[:8192]
    for fmt in LIBRARY_FORMATS:
        if library_reader(fmt).looks_like(head):
            return fmt
    raise InputError(name, "not a known library format (expected BibTeX, a Zotero CSV export, RIS or Better BibTeX JSON)")


def read_library(data: bytes, name: str, fmt: str = "auto") -> LibraryRead:
    """The entries of one reference-manager export (and those it had to skip)."""
    data = library_utf8(data, name)
    if fmt == "auto":
        fmt = detect_library_format(data, name)
    if fmt not in LIBRARY_FORMATS:
        raise InputError(name, f"unknown library format {fmt!r} (expected one of auto, {', '.join(LIBRARY_FORMATS)})")
    return library_reader(fmt).read(data, name)
