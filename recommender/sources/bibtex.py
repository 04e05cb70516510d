"""BibTeX / Zotero exports: the papers of a library to star. bibtexparser does the parsing
(LaTeX accents decoded, co-authors split); a block it cannot parse refuses the file."""

from __future__ import annotations

import logging

import bibtexparser
from bibtexparser import middlewares

from recommender.domain import ParsedPaper
from recommender.errors import InputError
from recommender.sources.lines import decoded_lines
from recommender.text import arxiv_id, one_line


def _field(entry: bibtexparser.model.Entry, *names: str) -> str:
    fields = {k.lower(): v for k, v in entry.fields_dict.items()}
    for name in names:
        if name in fields:
            value = fields[name].value
            return value if isinstance(value, str) else " and ".join(map(str, value))
    return ""


def _authors(entry: bibtexparser.model.Entry) -> tuple[str, ...]:
    fields = {k.lower(): v for k, v in entry.fields_dict.items()}
    value = fields["author"].value if "author" in fields else []
    names = [value] if isinstance(value, str) else list(value)
    return tuple(one_line(n.replace("{", "").replace("}", "")) for n in names if str(n).strip())


def parse(data: bytes, name: str) -> list[ParsedPaper]:
    text = "\n".join(line for _, line in decoded_lines(data, name))
    if not text.strip():
        raise InputError(name, "empty file: no BibTeX entries")
    quiet = logging.getLogger("bibtexparser")
    previous = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs each failed block; we report the first ourselves
    try:
        library = bibtexparser.parse_string(text, append_middleware=[
            middlewares.LatexDecodingMiddleware(), middlewares.SeparateCoAuthors(),
            middlewares.SplitNameParts(), middlewares.MergeNameParts("first"),
        ])
    except Exception as exc:  # the parser's own errors have no common base class
        raise InputError(name, f"not valid BibTeX: {exc}") from None
    finally:
        quiet.setLevel(previous)
    if library.failed_blocks:
        block = library.failed_blocks[0]
        raise InputError(name, "not valid BibTeX: an entry is not closed or a field is malformed",
                         block.start_line + 1)
    papers = []
    for entry in library.entries:
        title = one_line(_field(entry, "title").replace("{", "").replace("}", ""))
        abstract = _field(entry, "abstract").strip()
        if not title and not abstract:
            raise InputError(name, f"entry {entry.key!r} has no title", entry.start_line + 1)
        url = _field(entry, "url").strip()
        arxiv = ""
        if _field(entry, "archiveprefix").lower() == "arxiv" or "arxiv" in _field(entry, "eprinttype").lower():
            arxiv = arxiv_id(_field(entry, "eprint"))
        arxiv = arxiv or arxiv_id(url) or arxiv_id(_field(entry, "arxivid", "arxiv")) \
            or (arxiv_id(_field(entry, "journal", "note", "howpublished")) if "arxiv" in
                _field(entry, "journal", "note", "howpublished").lower() else "")
        papers.append(ParsedPaper(
            title=title, abstract=abstract, authors=_authors(entry), url=url, arxiv_id=arxiv,
            published=_field(entry, "year").strip(), line=entry.start_line + 1,
        ))
    if not papers:
        raise InputError(name, "no BibTeX entries found")
    return papers
