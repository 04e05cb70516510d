"""JSONL: one paper per line, ``{"id"?, "title", "abstract", "authors"?, "url"?, "published"?,
"category"?}``, or lines of arXiv's metadata snapshot (``arxiv-metadata-oai-snapshot.json``:
``id`` is the arXiv id, ``authors`` one string, ``authors_parsed`` the names split,
``versions``, ``update_date``, ``categories`` space-separated with the primary first, LaTeX in
the text), which are read as arXiv papers.

A line needs a non-empty title or abstract. A line that is not UTF-8, not JSON, or
not an object is a bad line and refuses the whole file.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from recommender.base.author_names import arxiv_authors, without_dblp_number
from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, doi, one_line
from recommender.sources.lines import decoded_lines, json_document


def authors_of(value: Any, name: str, line: int) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = value.replace(" and ", ",").split(",")
        return tuple(without_dblp_number(one_line(p)) for p in parts if p.strip())
    if isinstance(value, list):
        names = []
        for item in value:
            if isinstance(item, dict):
                item = item.get("name", "")
            if not isinstance(item, str):
                raise InputError(name, "field 'authors': expected a list of names", line)
            if item.strip():
                names.append(without_dblp_number(one_line(item)))
        return tuple(names)
    raise InputError(name, "field 'authors': expected a list of names or a string", line)


def text_field(record: dict[str, Any], key: str, name: str, line: int) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(name, f"field {key!r}: expected a string, got {type(value).__name__}", line)
    return value


SNAPSHOT_FIELDS = frozenset({"versions", "update_date", "authors_parsed", "submitter"})


def is_snapshot_row(record: dict[str, Any]) -> bool:
    """A row of arXiv's metadata snapshot: an ``id`` beside the snapshot's own fields."""
    return "id" in record and len(SNAPSHOT_FIELDS & record.keys()) >= 2


def primary_category(record: dict[str, Any], name: str, line: int) -> str:
    """``category``, else the first of ``categories`` (a snapshot's space-separated string, or a list)."""
    listed = record.get("categories")
    first = listed[0] if isinstance(listed, list) and listed else listed
    if isinstance(first, str) and "category" not in record:
        return one_line(first.split()[0] if first.split() else "")[:32]
    return one_line(text_field(record, "category", name, line))[:32]


def snapshot_paper(record: dict[str, Any], name: str, line: int) -> ParsedPaper:
    """A metadata-snapshot row: its ``id`` is the arXiv id; names from the ``authors`` string
    (as arXiv writes it, affiliations dropped), else from ``authors_parsed`` (last, first, suffix)."""
    identifier = arxiv_id(str(record.get("id") or ""))
    if not identifier:
        raise InputError(name, f"field 'id': {record.get('id')!r} is not an arXiv id", line)
    title = one_line(readable(text_field(record, "title", name, line)))
    abstract = one_line(readable(text_field(record, "abstract", name, line)))
    if not title and not abstract:
        raise InputError(name, "needs a non-empty 'title' or 'abstract'", line)
    authors = arxiv_authors(text_field(record, "authors", name, line))
    parsed = record.get("authors_parsed")
    if not authors and isinstance(parsed, list) and all(isinstance(p, list) for p in parsed):
        authors = tuple(one_line(readable(" ".join(str(part) for part in (p[1:2] + p[:1] + p[2:3]) if part)))
                        for p in parsed)
    versions = record.get("versions")
    first = versions[0].get("created", "") if isinstance(versions, list) and versions and isinstance(versions[0], dict) else ""
    return ParsedPaper(title=title, abstract=abstract, authors=tuple(a for a in authors if a),
                       url=f"https://arxiv.org/abs/{identifier}", arxiv_id=identifier,
                       published=one_line(str(first or record.get("update_date") or "")), line=line,
                       category=primary_category(record, name, line))


def paper_from_record(record: dict[str, Any], name: str, line: int) -> ParsedPaper:
    if is_snapshot_row(record):
        return snapshot_paper(record, name, line)
    title = one_line(text_field(record, "title", name, line))
    abstract = text_field(record, "abstract", name, line).strip()
    if not title and not abstract:
        raise InputError(name, "needs a non-empty 'title' or 'abstract'", line)
    raw_id = record.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        raise InputError(name, "field 'id': expected a string or integer", line)
    source_id = one_line(str(raw_id)) if raw_id is not None else ""
    url = text_field(record, "url", name, line).strip()
    explicit_arxiv = text_field(record, "arxiv_id", name, line)
    return ParsedPaper(
        title=title,
        abstract=abstract,
        authors=authors_of(record.get("authors"), name, line),
        url=url,
        arxiv_id=arxiv_id(explicit_arxiv) or arxiv_id(url),
        source_id=source_id,
        published=one_line(str(record.get("published") or "")),
        line=line,
        doi=doi(text_field(record, "doi", name, line)) or doi(url),
        category=primary_category(record, name, line),
    )


def parse(data: bytes, name: str, batch_date: date | None = None) -> ParsedBatch:
    entries = []
    for number, text in decoded_lines(data, name):
        if not text.strip():
            continue
        record = json_document(text, name, number)
        if not isinstance(record, dict):
            raise InputError(name, "expected a JSON object per line", number)
        entries.append(paper_from_record(record, name, number))
    if not entries:
        raise InputError(name, "empty file: no papers to ingest")
    return ParsedBatch(format="jsonl", entries=tuple(entries), batch_date=batch_date)


def looks_like(head: bytes) -> bool:
    return head.startswith(b"{")


def read(data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
    return parse(data, name, batch_date=hints.batch_date)
