"""BibTeX libraries as reference managers write them (Zotero, Better BibTeX, JabRef, Mendeley,
BibDesk, Qiqqa, by hand). bibtexparser splits the file into blocks and resolves ``@string``
macros; what it leaves to us: field names in any case (``Author =``), macros joined with
``#``, names as ``Last, First``, LaTeX in every field, and entries it cannot read, which are
skipped with their line and reason while the rest is imported."""

from __future__ import annotations

import bisect
import logging
import re
from typing import TYPE_CHECKING

from recommender.base.author_names import bibtex_names
from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, doi, one_line
from recommender.sources.jabref_groups import Group, group_tree, members, split_names
from recommender.sources.library_read import LibraryRead
from recommender.sources.lines import decoded_lines

if TYPE_CHECKING:
    from bibtexparser.model import Entry, String

NAME = "bibtex"
MONTHS = {m: str(i) for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_ENTRY_START = re.compile(rb"@\s*[A-Za-z]+\s*[{(]")
# Fields that may name an arXiv id with a prefix or URL (Zotero writes ``note = {arXiv:... [cs]}``).
_ARXIV_FIELDS = ("url", "doi", "arxivid", "arxiv", "journal", "note", "howpublished", "number", "publisher", "ee")
# An entry with no citation key (EndNote writes ``@article{`` then the first field): the key a
# parser needs is made from its line.
_KEYLESS = re.compile(r"(@\s*(?!(?:string|preamble|comment)\b)[A-Za-z]+\s*\{)(\s*[A-Za-z][\w-]*\s*=)", re.I)


def looks_like(head: bytes) -> bool:
    return bool(_ENTRY_START.search(head))


def read(data: bytes, name: str) -> LibraryRead:
    import bibtexparser  # on use: it would cost every other command's start-up

    text = "\n".join(line for _, line in decoded_lines(data, name))
    if not text.strip():
        raise InputError(name, "empty file: no BibTeX entries")
    if _KEYLESS.search(text):
        newlines = [n for n, c in enumerate(text) if c == "\n"]
        text = _KEYLESS.sub(lambda m: f"{m[1]}line-{bisect.bisect_left(newlines, m.start()) + 1},{m[2]}", text)
    quiet = logging.getLogger("bibtexparser")
    previous = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs each failed block; we report them ourselves
    try:
        library = bibtexparser.parse_string(text)
    except Exception as exc:  # noqa: BLE001 - the parser's own errors have no common base class
        raise InputError(name, f"not valid BibTeX: {exc}") from None
    finally:
        quiet.setLevel(previous)
    strings = {s.key.lower(): str(s.value) for s in library.strings}
    tree = group_tree([str(getattr(c, "comment", "")) for c in library.comments])
    entries = list(library.entries)
    skipped: list[str] = []
    for block in library.failed_blocks:
        recovered = getattr(block, "ignore_error_block", None)
        if recovered is not None and hasattr(recovered, "fields_dict"):
            # A duplicate key or field: the entry itself is readable, but the parser's stack
            # (macros resolved, enclosing braces and quotes removed) never saw it.
            entries.append(_through_parse_stack(recovered, library.strings))
        else:
            skipped.append(f"{name}:{(block.start_line or 0) + 1}: {_reason(block)}")
    papers = []
    for entry in sorted(entries, key=lambda e: e.start_line or 0):
        paper = _paper(entry, strings, tree, {g.name for g in tree})
        if paper is None:
            skipped.append(f"{name}:{(entry.start_line or 0) + 1}: entry {entry.key!r} has no title or abstract")
        else:
            papers.append(paper)
    return LibraryRead(papers, skipped)


def _through_parse_stack(entry: Entry, strings: list[String]) -> Entry:
    from bibtexparser import Library
    from bibtexparser.entrypoint import default_parse_stack

    alone = Library([*strings, entry])
    for middleware in default_parse_stack(allow_inplace_modification=True):
        alone = middleware.transform(alone)
    return alone.entries[0] if alone.entries else entry


def _reason(block: object) -> str:
    error = getattr(block, "error", None)
    if type(error).__name__ == "BlockAbortedException" or error is None:
        return "an entry is not closed (a brace or quote is missing) or a field is malformed; skipped"
    return f"not read: {one_line(str(error))[:200]}"


def _value(field: object, strings: dict[str, str]) -> str:
    """A field's text; ``macro # "text"`` joined the way BibTeX joins it."""
    value = str(getattr(field, "value", ""))
    if getattr(field, "enclosing", None) == "no-enclosing" and "#" in value:
        return "".join(_part(p.strip(), strings) for p in _split_concatenation(value))
    return value


def _split_concatenation(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in value:
        if char == '"' and depth == 0:
            quoted = not quoted
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "#" and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _part(part: str, strings: dict[str, str]) -> str:
    if len(part) >= 2 and part[0] == part[-1] == '"' or part[:1] == "{" and part[-1:] == "}":
        return part[1:-1]
    return strings.get(part.lower(), MONTHS.get(part.lower(), part))


def _paper(entry: object, strings: dict[str, str], tree: list[Group], declared: set[str]) -> ParsedPaper | None:
    fields = {str(k).lower(): _value(v, strings) for k, v in getattr(entry, "fields_dict").items()}  # noqa: B009
    title = one_line(readable(fields.get("title", "")))
    abstract = one_line(readable(fields.get("abstract", "")))
    if not title and not abstract:
        return None
    arxiv = ""
    eprint = fields.get("eprint", "").strip()
    if fields.get("archiveprefix", "").lower() == "arxiv" or "arxiv" in fields.get("eprinttype", "").lower() \
            or eprint.lower().startswith("arxiv:"):
        arxiv = arxiv_id(eprint)
    for key in _ARXIV_FIELDS:
        arxiv = arxiv or arxiv_id(fields.get(key, ""))
    year = fields.get("year", "").strip() or fields.get("date", "").strip()[:4]
    # Folders: the groups the entry names (JabRef, Better BibTeX), those the group tree puts it
    # in, and Mendeley's tags (the reader's own labels; its folders are not exported).
    named = split_names(fields.get("groups", ""), declared)
    folders = named + members(tree, str(getattr(entry, "key", "")), fields) + list(_listed(fields.get("mendeley-tags", "")))
    return ParsedPaper(groups=tuple(dict.fromkeys(n for n in (one_line(readable(f)) for f in folders) if n)),
                       keywords=_listed(fields.get("keywords", "") + "," + fields.get("mendeley-tags", "")),
                       title=title, abstract=abstract, authors=bibtex_names(fields.get("author", "")),
                       url=fields.get("url", "").strip(), arxiv_id=arxiv, published=year,
                       doi=doi(fields.get("doi", "")) or doi(fields.get("url", "")) or doi(fields.get("ee", "")),
                       line=getattr(entry, "start_line", 0) + 1)


def _listed(value: str) -> tuple[str, ...]:
    """A field's comma- or semicolon-separated names (keywords, Mendeley tags)."""
    return tuple(dict.fromkeys(n for n in (one_line(readable(part)) for part in re.split(r"[,;]", value)) if n))
