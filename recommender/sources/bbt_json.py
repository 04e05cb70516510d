"""Better BibTeX JSON (Zotero's "BetterBibTeX JSON" export): ``{"config": {...}, "collections":
{key: {"name", "parent", "collections", "items": [itemID, ...]}}, "items": [{"itemID",
"itemType", "title", "abstractNote", "creators", "date", "DOI", "url", "extra", "tags"}, ...]}``.
It is the one Zotero export that keeps the collections whole: an item's folders are the
collections whose ``items`` list it, each by its own name (nested collections too, as Better
BibTeX writes them in a BibTeX ``groups`` field); its tags are its keywords. Notes,
attachments and annotations are not papers and are passed over."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, doi, one_line
from recommender.sources.library_read import LibraryRead
from recommender.sources.lines import decoded_lines, json_document

NAME = "bbt-json"
_MARKS = (b'"BetterBibTeX JSON"', b'"collections"', b'"itemType"')
_ARXIV_FIELDS = ("url", "DOI", "extra", "archiveID", "publicationTitle", "number", "reportNumber")
_NOT_PAPERS = frozenset({"note", "attachment", "annotation"})


def looks_like(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") and any(mark in head for mark in _MARKS)


def read(data: bytes, name: str) -> LibraryRead:
    text = "\n".join(line for _, line in decoded_lines(data, name))
    library = json_document(text, name)
    items = library.get("items") if isinstance(library, dict) else None
    if not isinstance(items, list):
        raise InputError(name, "not a Better BibTeX JSON export: no \"items\" list")
    folders = _folders(library.get("collections"))
    papers, skipped = [], []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict) or item.get("itemType") in _NOT_PAPERS:
            continue
        paper = _paper(item, folders.get(item.get("itemID"), ()))
        if paper is None:
            skipped.append(f"{name}: item {index} (itemID {item.get('itemID')}) has no title or abstract; skipped")
        else:
            papers.append(paper)
    return LibraryRead(papers, skipped)


def _folders(collections: object) -> dict[Any, tuple[str, ...]]:
    """itemID -> the names of the collections that list it."""
    found: dict[Any, list[str]] = {}
    for collection in collections.values() if isinstance(collections, dict) else ():
        if not isinstance(collection, dict) or not one_line(str(collection.get("name", ""))):
            continue
        label = one_line(str(collection["name"]))
        for item_id in collection.get("items") or ():
            if label not in found.setdefault(item_id, []):
                found[item_id].append(label)
    return {item_id: tuple(sorted(names, key=_base)) for item_id, names in found.items()}


def _base(label: str) -> str:
    """Better BibTeX's order for an item's collections in a BibTeX ``groups`` field (by name,
    without case or accents), so that both exports of one library give the same topics."""
    return "".join(c for c in unicodedata.normalize("NFKD", label) if not unicodedata.combining(c)).casefold()


def _text(item: dict[str, Any], field: str) -> str:
    value = item.get(field)
    return value.strip() if isinstance(value, str) else ""


def _paper(item: dict[str, Any], folders: tuple[str, ...]) -> ParsedPaper | None:
    title = one_line(readable(_text(item, "title")))
    abstract = one_line(readable(_text(item, "abstractNote")))
    if not title and not abstract:
        return None
    arxiv = next((i for i in (arxiv_id(_text(item, f)) for f in _ARXIV_FIELDS) if i), "")
    creators = [c for c in item.get("creators") or () if isinstance(c, dict)]
    primary = [c for c in creators if c.get("creatorType", "author") == "author"] or creators
    authors = tuple(n for n in (one_line(str(c.get("name") or f"{c.get('firstName', '')} {c.get('lastName', '')}"))
                                for c in primary) if n)
    tags = [t.get("tag") if isinstance(t, dict) else t for t in item.get("tags") or ()]
    year = re.search(r"\d{4}", _text(item, "date"))
    return ParsedPaper(title=title, abstract=abstract, authors=authors, url=_text(item, "url"), arxiv_id=arxiv,
                       published=year.group(0) if year else "", doi=doi(_text(item, "DOI")), groups=folders,
                       keywords=tuple(dict.fromkeys(one_line(t) for t in tags if isinstance(t, str) and t.strip())))
