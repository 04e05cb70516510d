"""The formats the package reads, one line each: the name a config's source ``kind`` and the
``--format`` options use, and the module of ``recommender.sources`` that reads it. Config
validation, format detection (in this order) and the command line all read these tables, so
a new format is its module and one line here.

A digest module has ``looks_like(head) -> bool`` and ``read(data, name, hints) -> ParsedBatch``;
a library module ``looks_like(head) -> bool`` and ``read(data, name) -> LibraryRead``."""

from __future__ import annotations

# Daily digests of new papers.
DIGEST_FORMATS: dict[str, str] = {
    "jsonl": "jsonl",
    "hf_daily": "hf_daily",
    "arxiv": "arxiv",
    "trending_page": "trending_page",
}

# Reference-manager exports (stars to import). RIS and CSV first: a CSV cell may hold an "@".
LIBRARY_FORMATS: dict[str, str] = {
    "ris": "ris",
    "csv": "zotero_csv",
    "bibtex": "bibtex",
}
