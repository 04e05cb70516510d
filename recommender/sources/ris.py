"""RIS (what EndNote, Mendeley, Zotero and publishers' sites export), read with rispy:
``TY`` starts a record, ``ER`` ends it; titles, ``AU`` authors (``Last, First``), ``AB``
abstracts, ``UR`` URLs and ``DO`` DOIs are what a profile needs."""

from __future__ import annotations

import re

from recommender.base.author_names import first_last
from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, doi, one_line
from recommender.sources.library_read import LibraryRead
from recommender.sources.lines import decoded_lines

NAME = "ris"
_START = re.compile(rb"^\s*TY  - ", re.MULTILINE)


def looks_like(head: bytes) -> bool:
    return bool(_START.search(head.lstrip(b"\xef\xbb\xbf")))


def read(data: bytes, name: str) -> LibraryRead:
    import rispy  # on use: only RIS imports need it

    text = "\n".join(line for _, line in decoded_lines(data, name))
    try:
        records = rispy.loads(text)
    except Exception as exc:  # noqa: BLE001 - rispy raises plain IOError/ValueError subclasses
        raise InputError(name, f"not valid RIS ({one_line(str(exc))[:200]})") from None
    starts = [i + 1 for i, line in enumerate(text.split("\n")) if line.lstrip().startswith("TY  -")]
    papers, skipped = [], []
    for index, record in enumerate(records):
        line = starts[index] if index < len(starts) else 0
        paper = _paper(record, line)
        if paper is None:
            skipped.append(f"{name}:{line}: record has no title or abstract; skipped")
        else:
            papers.append(paper)
    return LibraryRead(papers, skipped)


def _first(record: dict[str, object], *keys: str) -> str:
    for key in keys:
        value = record.get(key)
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v.strip()), "")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _paper(record: dict[str, object], line: int) -> ParsedPaper | None:
    title = one_line(readable(_first(record, "primary_title", "title", "translated_title", "short_title")))
    abstract = one_line(readable(_first(record, "abstract", "notes_abstract")))
    if not title and not abstract:
        return None
    # AU and A1 both name authors (rispy keeps them apart); a file may use both.
    raw_authors = [a for key in ("authors", "first_authors") if isinstance(found := record.get(key), list)
                   for a in found if isinstance(a, str) and a.strip()]
    authors = tuple(dict.fromkeys(first_last(readable(a)) for a in raw_authors))
    found_urls = record.get("urls")
    urls = [u for u in found_urls if isinstance(u, str)] if isinstance(found_urls, list) else []
    candidates = [*urls, _first(record, "doi"), _first(record, "notes"), _first(record, "note"),
                  _first(record, "custom1", "custom2"), _first(record, "number")]
    arxiv = next((i for i in map(arxiv_id, candidates) if i), "")
    url = next((u for u in urls if u.startswith(("http://", "https://"))), "")
    year = _first(record, "year", "publication_year", "date")[:4]
    found_keywords = record.get("keywords")
    keywords = tuple(dict.fromkeys(one_line(k) for k in found_keywords if isinstance(k, str) and k.strip())) \
        if isinstance(found_keywords, list) else ()
    return ParsedPaper(title=title, abstract=abstract, authors=authors, url=url, arxiv_id=arxiv, published=year,
                       line=line, doi=doi(_first(record, "doi")), keywords=keywords)
