"""arXiv listings, each in its own shape, read with an XML parser:

- the RSS 2.0 feed of a category (rss.arxiv.org/rss/..., since 2024) and its Atom twin
  (rss.arxiv.org/atom/...): plain-text descriptions ``arXiv:ID Announce Type: new Abstract:
  ...`` and one ``dc:creator`` string with every author;
- the older RSS 1.0 (RDF) feeds that archives and mirrors still serve: titles ending in
  ``(arXiv:ID [cat] UPDATED)``, HTML descriptions, authors as HTML links;
- Atom responses of the export API: one ``author/name`` per author; an error is an entry
  whose id points at ``/api/errors``.

Replacements of old papers (announce type ``replace``/``replace-cross``, RSS 1.0 ``UPDATED``)
are skipped unless asked for; cross-lists are kept. Ids are stored without their version, so a
v2 is the same paper. Text is LaTeX turned into Unicode; markup is removed only where a field
is markup (RSS 1.0), with an HTML parser, so ``a < k < b`` in a plain-text abstract stays.

Each paper's primary category is the API's ``arxiv:primary_category``, else the first category
an entry lists (the feeds list the primary first), else RSS 1.0's bracketed ``[cat]``.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET  # nosec B405  # DOCTYPE (so any entity definition) is refused first
from datetime import date
from html.parser import HTMLParser

from recommender.base.author_names import arxiv_authors, without_dblp_number
from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.base.text import arxiv_id, one_line
from recommender.sources.lines import cut_off

log = logging.getLogger(__name__)
ATOM = "{http://www.w3.org/2005/Atom}"
RSS1 = "{http://purl.org/rss/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"
ARXIV = "{http://arxiv.org/schemas/atom}"
_ANNOUNCE = re.compile(r"Announce Type:\s*([\w-]+)", re.IGNORECASE)
_ABSTRACT = re.compile(r"^.*?\bAbstract:\s*", re.IGNORECASE | re.DOTALL)
_RSS1_SUFFIX = re.compile(r"\s*\(arXiv:[^()]*?(?:\[([^\]]*)\])?\s*(UPDATED|CROSS LISTED)?\)\s*$", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!DOCTYPE\s+([\w:.-]+)", re.I)
_CATEGORY = re.compile(r"[a-z][a-z-]*(?:\.[A-Za-z][A-Za-z-]*)?")


class ArxivApiError(InputError):
    """The arXiv API answered with an error entry instead of papers."""


def parse(data: bytes, name: str, batch_date: date | None = None, include_replacements: bool = False) -> ParsedBatch:
    root = _root(data, name)
    if root.tag == "rss":
        entries = _rss2(root, include_replacements)
    elif root.tag == f"{RDF}RDF":
        entries = _rss1(root, include_replacements)
    elif root.tag == f"{ATOM}feed":
        entries = _atom(root, name, include_replacements)
    else:
        raise InputError(name, f"not an arXiv RSS or Atom feed (the document is <{_local(root.tag)}>)")
    return ParsedBatch(format="arxiv", entries=tuple(_numbered(entries, name)), batch_date=batch_date)


def _root(data: bytes, name: str) -> ET.Element:
    if not data.strip():
        raise InputError(name, "empty response: no arXiv entries")
    head = data[:4096].lower()
    if b"<!doctype html" in head or b"<html" in head:
        raise InputError(name, "not an RSS or Atom feed (an HTML page)")
    doctype = _DOCTYPE.search(data[:4096])
    if doctype and doctype.group(1).lower() not in (b"rss", b"feed", b"rdf:rdf"):
        raise InputError(name, f"not an RSS or Atom feed (the document is <{doctype.group(1).decode()}>)")
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise InputError(name, "not an RSS or Atom feed: it declares a DOCTYPE or entities (arXiv feeds have none, "
                               "and entities are not expanded)")
    try:
        return ET.fromstring(data)  # nosec B314  # no DOCTYPE, so no entity can be defined or expanded
    except ET.ParseError as exc:
        raise cut_off(data, name, exc, exc.position[0], "entry") or InputError(name, f"not an RSS or Atom feed ({exc})") \
            from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: ET.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return "".join(found.itertext()) if found is not None else ""


def _numbered(entries: list[ParsedPaper | None], name: str) -> list[ParsedPaper]:
    named = [e for e in entries if e is not None]
    if named and not any(e.arxiv_id for e in named):
        raise InputError(name, f"not an arXiv feed: none of its {len(named)} entries names an arXiv id "
                               "(read it with --format feed)")
    kept = []
    for index, entry in enumerate(entries, start=1):
        if entry is None:
            continue
        if not entry.arxiv_id or not (entry.title or entry.abstract):
            log.warning("%s: entry %d (%s) lacks an arXiv id or text; skipped", name, index, entry.title[:60])
            continue
        kept.append(ParsedPaper(**{**entry.__dict__, "line": index}))
    return kept


def _paper(identifier: str, title: str, abstract: str, authors: tuple[str, ...], published: str,
           category: str) -> ParsedPaper:
    return ParsedPaper(title=one_line(readable(title)), abstract=one_line(readable(abstract)),
                       authors=tuple(without_dblp_number(a) for a in authors),
                       url=f"https://arxiv.org/abs/{identifier}" if identifier else "", arxiv_id=identifier,
                       published=one_line(published), category=_category(category))


def _category(text: str) -> str:
    """One subject class as arXiv writes it (``cs.LG``, ``hep-ex``, ``math.AP``), else nothing."""
    found = _CATEGORY.fullmatch(text.strip())
    return found.group(0) if found else ""


def _announced(kind: str, include_replacements: bool) -> bool:
    return include_replacements or not kind.lower().startswith("replace")


def _abstract_of(description: str) -> tuple[str, str]:
    """(announce type, abstract) of a current feed's plain-text description."""
    announce = _ANNOUNCE.search(description)
    kind = announce.group(1).lower() if announce else "new"
    return kind, (_ABSTRACT.sub("", description, count=1) if announce else description)


def _rss2(root: ET.Element, include_replacements: bool) -> list[ParsedPaper | None]:
    entries: list[ParsedPaper | None] = []
    for item in root.iter("item"):
        kind, abstract = _abstract_of(_text(item, "description"))
        kind = (_text(item, f"{ARXIV}announce_type") or kind).strip().lower()
        if not _announced(kind, include_replacements):
            continue
        identifier = arxiv_id(_text(item, "link")) or arxiv_id(_text(item, "guid"))
        # A paper's categories are listed primary first (a cross-list names its own primary).
        entries.append(_paper(identifier, _text(item, "title"), abstract,
                              arxiv_authors(_text(item, f"{DC}creator")), _text(item, "pubDate"), _text(item, "category")))
    return entries


def _rss1(root: ET.Element, include_replacements: bool) -> list[ParsedPaper | None]:
    entries: list[ParsedPaper | None] = []
    for item in root.iter(f"{RSS1}item"):
        title = one_line(_text(item, f"{RSS1}title"))
        suffix = _RSS1_SUFFIX.search(title)
        category = (suffix.group(1) or "") if suffix else ""
        if suffix:
            title = title[:suffix.start()].rstrip()
            if (suffix.group(2) or "").upper() == "UPDATED" and not include_replacements:
                continue
        identifier = arxiv_id(_text(item, f"{RSS1}link")) or arxiv_id(item.get(f"{RDF}about", ""))
        creators = _Html.parse(_text(item, f"{DC}creator"))
        authors = tuple(readable(one_line(n)) for n in creators.links) or arxiv_authors(creators.text)
        entries.append(_paper(identifier, title, _Html.parse(_text(item, f"{RSS1}description")).text,
                              authors, _text(item, f"{DC}date"), category))
    return entries


def _atom(root: ET.Element, name: str, include_replacements: bool) -> list[ParsedPaper | None]:
    entries: list[ParsedPaper | None] = []
    for entry in root.iter(f"{ATOM}entry"):
        raw_id = _text(entry, f"{ATOM}id")
        if "/api/errors" in raw_id:
            raise ArxivApiError(name, f"the arXiv API answered with an error: {one_line(_text(entry, f'{ATOM}summary'))}")
        summary = _text(entry, f"{ATOM}summary")
        kind, abstract = _abstract_of(summary) if _ANNOUNCE.search(summary) else ("new", summary)
        kind = (_text(entry, f"{ARXIV}announce_type") or kind).strip().lower()
        if not _announced(kind, include_replacements):
            continue
        links = [link.get("href", "") for link in entry.findall(f"{ATOM}link")]
        identifier = arxiv_id(raw_id) or next((i for i in map(arxiv_id, links) if i), "")
        names = [_text(author, f"{ATOM}name") for author in entry.findall(f"{ATOM}author")]
        creator = _text(entry, f"{DC}creator")
        authors = arxiv_authors(creator) if creator else tuple(readable(one_line(n)) for n in names if n.strip())
        primary = entry.find(f"{ARXIV}primary_category")  # the API names it; the feeds list it first
        first = entry.find(f"{ATOM}category")
        category = next((e.get("term", "") for e in (primary, first) if e is not None), "")
        entries.append(_paper(identifier, _text(entry, f"{ATOM}title"), abstract, authors,
                              _text(entry, f"{ATOM}published") or _text(entry, f"{ATOM}updated"), category))
    return entries


class _Html(HTMLParser):
    """The text of an HTML fragment (character references decoded), and the text of each link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self._link: list[str] | None = None

    @classmethod
    def parse(cls, fragment: str) -> _Html:
        parser = cls()
        parser.feed(fragment)
        parser.close()
        return parser

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._link = []
        elif tag in ("p", "br", "div", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._link is not None:
            self.links.append("".join(self._link))
            self._link = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._link is not None:
            self._link.append(data)


def looks_like(head: bytes) -> bool:
    return head.startswith(b"<")


def read(data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
    return parse(data, name, batch_date=hints.batch_date, include_replacements=hints.include_replacements)
