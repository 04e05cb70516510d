"""The ids an ingested entry names, and the one a new paper gets: its source's id, else its
arXiv id, else its DOI, else a hash of its title (the id column holds 64 characters: a longer
id is not used)."""

from __future__ import annotations

from recommender.base.domain import ParsedPaper
from recommender.base.text import title_hash_id, title_key

ID_WIDTH = 64


def generated_id(entry: ParsedPaper) -> str:
    """The id of a paper known only by its text: a hash of its normalised title, else of its abstract."""
    if title_key(entry.title):
        return title_hash_id(entry.title)
    return title_hash_id(f"abstract: {title_key(entry.abstract) or entry.abstract}")


def ids_of(entry: ParsedPaper) -> list[str]:
    """Every id the entry names: its source's id, arXiv id, DOI and the ids of the same work
    elsewhere (a preprint's journal DOI)."""
    return [i for i in (entry.source_id, entry.arxiv_id, entry.doi, *entry.other_ids) if i and len(i) <= ID_WIDTH]


def natural_id(entry: ParsedPaper) -> str:
    usable_doi = entry.doi if len(entry.doi) <= ID_WIDTH else ""
    return entry.source_id or entry.arxiv_id or usable_doi or generated_id(entry)
