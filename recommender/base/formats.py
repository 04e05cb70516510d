"""The formats the package reads, one line each: the name a config's source ``kind`` and the
``--format`` options use, and the module of ``recommender.sources`` that reads it. Config
validation, format detection (in this order) and the command line all read these tables, so
a new format is its module and one line here: a module of functions that conforms to
``DigestFormat`` or ``LibraryFormat`` (tests/test_parsers.py checks every registered one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, runtime_checkable

from recommender.base.domain import LibraryRead, ParsedBatch, ReadHints


@runtime_checkable
class DigestFormat(Protocol):
    """A reader of daily digests of new papers."""

    def looks_like(self, head: bytes) -> bool:
        """Whether a file's first bytes (at most 4 KiB, leading whitespace stripped) are in this format."""

    def read(self, data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
        """The file's entries; a bad one raises InputError with ``name`` and its line."""


@runtime_checkable
class LibraryFormat(Protocol):
    """A reader of a reference manager's export (stars to import)."""

    def looks_like(self, head: bytes) -> bool:
        """Whether a file's first bytes (at most 8 KiB) are in this format."""

    def read(self, data: bytes, name: str) -> LibraryRead:
        """The entries it could read, and a line for each it skipped."""


@runtime_checkable
class PagedFormat(DigestFormat, Protocol):
    """A digest format read from an API in pages (bioRxiv, medRxiv): a source of the kind needs
    no url, it has the API's."""

    def first_urls(self, base_url: str, server: str, today: date, days: int,
                   categories: Sequence[str]) -> list[str]:
        """The first page of each request a fetch makes."""

    def next_url(self, url: str, data: bytes, pages: int) -> str | None:
        """The page after the answer ``data`` to ``url``, or None after the last."""


# Daily digests of new papers.
DIGEST_FORMATS: dict[str, str] = {
    "biorxiv": "biorxiv",  # bioRxiv/medRxiv API answers: JSON objects, so before JSONL
    "medrxiv": "biorxiv",
    "jsonl": "jsonl",
    "hf_daily": "hf_daily",
    "feed": "feed",  # any RSS/Atom feed but arXiv's, so before arxiv (which takes any XML)
    "arxiv": "arxiv",
    "trending_page": "trending_page",
}

# Kinds read from an API in pages: their modules conform to ``PagedFormat``.
PAGED_FORMATS: frozenset[str] = frozenset({"biorxiv", "medrxiv"})

# Reference-manager exports (stars to import). RIS, CSV and JSON first: a cell or a field's
# text may hold an "@".
LIBRARY_FORMATS: dict[str, str] = {
    "ris": "ris",
    "bbt-json": "bbt_json",
    "csv": "zotero_csv",
    "bibtex": "bibtex",
}


# `import-library --topics-from`: what of a library entry gives its topic (collections are
# what BibTeX exports call groups; Mendeley's tags and a Zotero CSV's manual tags stand in for
# folders those exports do not carry).
TOPICS_FROM = {"collections": "groups", "groups": "groups", "keywords": "keywords"}
