"""Zotero's "Export Collection → CSV": a header row (``Key, Item Type, Publication Year, Author,
Title, Publication Title, DOI, Url, Abstract Note, ..., Extra``), then one item per row.
Authors are ``Last, First`` joined by ``;``. An arXiv id is taken from an arxiv.org URL, a
10.48550/arXiv DOI, or an ``arXiv:`` prefix where Zotero and its importers put one (Extra,
Publication Title, Pages, Archive ID, Number)."""

from __future__ import annotations

import csv
import io

from recommender.base.author_names import listed_names
from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, doi, one_line
from recommender.sources.library_read import LibraryRead
from recommender.sources.lines import decoded_lines

NAME = "csv"
_ARXIV_COLUMNS = ("Url", "DOI", "Extra", "Archive ID", "Publication Title", "Pages", "Number", "Report Number")


def looks_like(head: bytes) -> bool:
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    # Zotero's header, or what is left of it when a spreadsheet dropped columns ("Item Type" too)
    return b'"Item Type"' in first or first.startswith(b"Key,Item Type") \
        or (b"Abstract Note" in first and b"Title" in first and b"," in first)


def read(data: bytes, name: str) -> LibraryRead:
    lines = list(decoded_lines(data, name))
    reader = csv.DictReader(io.StringIO("\n".join(text for _, text in lines)))
    papers, skipped = [], []
    try:
        if not reader.fieldnames or "Title" not in reader.fieldnames:
            raise InputError(name, "not a Zotero CSV export: the header has no Title column", 1)
        for row in reader:
            line = reader.line_num
            if row.get(None):
                skipped.append(f"{name}:{line}: more columns than the header; skipped")
                continue
            paper = _paper(row, line)
            if paper is None:
                skipped.append(f"{name}:{line}: no title or abstract; skipped")
            else:
                papers.append(paper)
    except csv.Error as exc:
        raise InputError(name, f"not valid CSV ({exc})", reader.line_num) from None
    return LibraryRead(papers, skipped)


def _paper(row: dict[str, str], line: int) -> ParsedPaper | None:
    def cell(column: str) -> str:
        return (row.get(column) or "").strip()

    title = one_line(readable(cell("Title")))
    abstract = one_line(readable(cell("Abstract Note")))
    if not title and not abstract:
        return None
    arxiv = next((i for i in (arxiv_id(cell(c)) for c in _ARXIV_COLUMNS) if i), "")
    # A CSV export has no collection column: the tags a reader gave by hand are its folders.
    manual = tuple(t for t in (one_line(t) for t in cell("Manual Tags").split(";")) if t)
    automatic = tuple(t for t in (one_line(t) for t in cell("Automatic Tags").split(";")) if t)
    return ParsedPaper(title=title, abstract=abstract, authors=listed_names(cell("Author"), r"\s*;\s*"),
                       url=cell("Url"), arxiv_id=arxiv, published=cell("Publication Year"), line=line,
                       doi=doi(cell("DOI")), groups=manual, keywords=tuple(dict.fromkeys(manual + automatic)))
