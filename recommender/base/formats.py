"""The formats the package reads, one line each: the name a config's source ``kind`` and the
``--format`` options use, and the module of ``recommender.sources`` that reads it. Config
validation, format detection (in this order) and the command line all read these tables, so
a new format is its module and one line here.

A digest module has ``looks_like(head) -> bool`` and ``read(data, name, hints) -> ParsedBatch``;
a library module ``looks_like(head) -> bool`` and ``read(data, name) -> LibraryRead``."""

from __future__ import annotations

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

# Kinds read from an API in pages: the module has first_urls() and next_url(), and a source
# of the kind needs no url (it has the API's).
PAGED_FORMATS: frozenset[str] = frozenset({"biorxiv", "medrxiv"})

# Reference-manager exports (stars to import). RIS and CSV first: a CSV cell may hold an "@".
LIBRARY_FORMATS: dict[str, str] = {
    "ris": "ris",
    "csv": "zotero_csv",
    "bibtex": "bibtex",
}
