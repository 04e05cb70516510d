"""Any RSS (0.9x, 1.0/RDF, 2.0) or Atom feed, read with feedparser: journals' tables of
contents (Nature, Science, Cell Press, PNAS, PLOS, ACS, IOP, APS, Springer, Elsevier), PubMed
searches saved as RSS, bioRxiv's and ChemRxiv's subject feeds, a lab's blog.

Each item becomes a paper: its title and summary without markup or entities (and without the
"Journal, Published online: ...; doi:..." or "Volume, Issue, Page" line publishers put first),
its authors as people's names, and its DOI from wherever the feed gives one (``prism:doi``,
``dc:identifier``, the link or the id). Items the feed marks as news, editorials and the like
(``dc:type``, PRISM section) are dropped, as are those whose title matches one of the source's
``exclude_titles`` patterns."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import feedparser

from recommender.base.author_names import arxiv_authors, first_last
from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError
from recommender.base.markup import plain
from recommender.base.text import arxiv_id, doi
from recommender.sources.lines import cut_off

log = logging.getLogger(__name__)
# Item types (dc:type, prism:section) that are not research: what a source drops unless it
# names its own list with exclude_types.
NOT_RESEARCH = (
    "news", "news & views", "news and views", "news feature", "editorial", "editorials", "comment", "correspondence",
    "obituary", "book review", "books & arts", "research highlight", "research highlights", "career", "careers",
    "career feature", "world view", "in brief", "this week", "podcast", "letter to the editor", "retraction",
    "erratum", "correction", "author correction", "publisher correction", "editor's choice", "editors' choice",
    # Wiley's sections for an issue's covers and front matter, and its profiles of authors
    "cover picture", "frontispiece", "graphical abstract", "author profile", "issue information", "table of contents",
    "corrigenda", "corrigendum", "commentary", "front matter", "back matter",
)
_BOILERPLATE = (
    re.compile(r"^[^;]{0,160}?,\s*Published online:\s*[^;]*;\s*doi:\s*\S+\s*", re.I),  # Nature
    re.compile(r"^[^.]{0,160}?,\s*Volume \d+,\s*Issue [^,]+,(?:\s*Page [^,]*,)?\s*[A-Z][a-z]+ \d{4}\.\s*"),  # Science, PNAS
    # Taylor & Francis: "Volume 67, Issue 4, December 2021, Page 283-289 ."
    re.compile(r"^Volume \d+,\s*Issue [^,]+,\s*[A-Z][a-z]+ \d{4},\s*Pages? [^.\s]+\s*\.\s*"),
    # PubMed: "Parasitol Int. 2021 Dec 17:102531. doi: 10.1016/j.parint.2021.102531. Online ahead of print."
    re.compile(r"^[A-Z][\w &'(),-]{0,120}\. \d{4}\b[^.]{0,80}\.(?: doi: \S+?\.(?=\s|$))?"
               r"(?: (?:Online ahead of print|eCollection[^.]*|Epub[^.]*)\.)*\s*(?=ABSTRACT\b|PMID:)"),
    # a heading (Wiley, Oxford Academic, PubMed's "ABSTRACT"; Wiley's "Summary"), not "Abstract
    # reasoning is ..." or "Summary statistics ..."
    re.compile(r"^(?:Abstract|ABSTRACT|Summary|SUMMARY)(?::\s*|\s+(?=[A-Z0-9]))"),
)
# PubMed ends with its ids: "PMID:34929406 | PMC:PMC8672069 | DOI:10.1016/..."
_TRAILING_IDS = re.compile(r"\s*PMID:\s*\d+(?:\s*\|\s*[A-Za-z]+:\s*\S+)*\s*$")
# what some feeds (OJS journals) write where an item has no abstract
_NO_ABSTRACT = {"", ".", "n/a", "na", "none", "-", "no abstract", "no abstract available"}
# MDPI puts the journal, volume and pages before the title: "Fluids, Vol. 9, Pages 120: Title"
_TITLE_PREFIX = re.compile(r"^[^:,]{1,80}, Vol\. \d+, Pages? [\w\-\u2013]+: ")
_INITIALS = re.compile(r"^(?:[A-Z][a-z]?\.?[\s-]*){1,4}$")
# Vancouver style (PubMed, Oxford Academic): "Brandão S", "Smith JA", "Brandt A."
_VANCOUVER = re.compile(r"^(?P<surname>\S.*?) (?P<initials>[A-Z]{1,3})\.?$")
_CAPITAL_SURNAME = re.compile(r"^[A-Z][a-z]\S* [A-Z]{4,}$")
_ROMAN = {"II", "III", "IV", "VI"}
# Summaries made of labelled paragraphs: ScienceDirect's "Publication date: ... Source: ...
# Author(s): ...", Pensoft's "ZooKeys 1078: 135-188 DOI: ... Authors: ... Abstract: ..."
_PARAGRAPH = re.compile(r"<\s*/?\s*(?:p|br|div|h[1-6])\b[^>]*>", re.I)  # CNKI writes </br>
_LABEL = re.compile(r"^(Author\(s\)|Authors?|DOI|Abstract|Publication date|Source)\s*:\s*(.*)$", re.I | re.S)
_META_PARAGRAPH = re.compile(r"^(?:Published|Updated|Comments?|PDF|Journal reference|Categories|Subjects?|Keywords"
                             r"|Citation|Links?|Submitted|Publication date|Source)\s*:", re.I)
_LISTED_NAME = re.compile(r"^[A-Z][\w'.-]*(?: [A-Z][\w'.-]*){1,3}$")  # "Guocheng SHU", "Justin BERNSTEIN"
_LINK_ONLY = re.compile(r"^(?:https?://)?(?:[\w-]+\.)+[a-z]{2,}(?:/\S*)?$", re.I)
_HTML_PAGE = re.compile(rb"^\s*(?:<!doctype\s+html|<html\b)", re.I)
# arXiv's own feeds and API answers name arxiv.org before their first item (channel, namespace)
_FIRST_ITEM = re.compile(rb"<(?:item|entry)[\s>]")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _given_first(name: str) -> str:
    """A Vancouver-style name ("Smith JA") as "J. A. Smith"; other names as they are."""
    match = _VANCOUVER.match(name)
    if not match or match["initials"] in _ROMAN or match["surname"].isupper():  # "SI QIN" is all capitals
        return name
    return " ".join([*(f"{c}." for c in match["initials"]), match["surname"]])


def people(names: Iterable[str]) -> tuple[str, ...]:
    """Authors as feeds write them: one per element (as "Given Surname" or "Surname, Given"),
    "A; B", "A, B and C", Vancouver's "Surname AB, Surname C", or bioRxiv's "Surname, I.,
    Surname, I." pairs."""
    elements = [text for raw in names if (text := plain(raw).strip(" ,;"))]
    found: list[str] = []
    for text in elements:
        parts = [p.strip() for p in text.split(",")]
        if ";" in text:
            found += [first_last(part) for part in text.split(";") if part.strip()]
        elif len(parts) >= 2 and len(parts) % 2 == 0 and all(_INITIALS.match(p) for p in parts[1::2]):
            found += [f"{given} {surname}" for surname, given in zip(parts[::2], parts[1::2], strict=True)]
        elif len(parts) == 2 and all(parts) and " and " not in text \
                and (len(elements) > 1 or " " not in parts[0]):  # one person per element: "Inoda, Toshio"
            found.append(first_last(text))
        else:
            found += list(arxiv_authors(text))
    if any(_CAPITAL_SURNAME.search(n) for n in found):  # "Given SURNAME" (CNKI): "Ping LIU" is no "Ping L. I. U."
        return tuple(dict.fromkeys(n for n in found if n))
    return tuple(dict.fromkeys(_given_first(n) for n in found if n))


def _labelled(entry: Any) -> dict[str, str]:
    """The labelled paragraphs of an item's summary, by lower-case label ("authors" for both
    "Authors:" and "Author(s):"); empty unless the summary is made of two or more of them."""
    found: dict[str, str] = {}
    for block in _PARAGRAPH.split(_text(entry.get("summary"))):
        match = _LABEL.match(plain(block))
        if match:
            label = "authors" if match[1].lower().startswith("author") else match[1].lower()
            found.setdefault(label, match[2].strip())
    return found if len(found) >= 2 else {}


def _names_paragraph(text: str, named: Sequence[str]) -> tuple[str, ...]:
    """The authors, when a summary's first paragraph is their list: "A. Smith, B. Jones, ..."
    holding the surname of an author the item names, or (an item naming none, as CNKI's)
    "Given SURNAME;Given SURNAME;..."; else nothing."""
    found = people([text]) if len(text) < 4000 and not text.endswith(".") else ()
    if len(found) < 2 or any(len(n.split()) > 5 or not n[:1].isupper() for n in found):
        return ()
    surnames = {n.split()[-1].lower() for n in named if n.strip()}
    if surnames:
        return found if surnames & {n.split()[-1].lower() for n in found} else ()
    listed = ";" in text and all(_LISTED_NAME.match(part.strip()) for part in text.split(";") if part.strip())
    return found if listed else ()


def _abstract(entry: Any, labelled: dict[str, str], named: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The item's abstract, and the authors when its summary opens with their whole list."""
    if labelled:  # only the "Abstract:" paragraph is the abstract; the rest is metadata or links
        return labelled.get("abstract", ""), ()
    content = entry.get("content") or []
    candidates = [_text(c.get("value")) for c in content if isinstance(c, dict)] + [_text(entry.get("summary"))]
    raw = max(candidates, key=lambda c: len(plain(c)), default="")
    # Paragraphs of metadata ("<b>Published:</b> ...", "PDF: ...") or a bare link to the source
    # (Google Scholar's "www.sciencedirect.com") beside the abstract are not it.
    blocks = [text for block in _PARAGRAPH.split(raw) if (text := plain(block))]
    # An "Abstract" heading of its own (Schweizerbart's <h2>): what precedes it is the title,
    # authors and citation again.
    heading = next((n for n, b in enumerate(blocks) if b.strip(" :").lower() in ("abstract", "summary")), None)
    if heading is not None and heading + 1 < len(blocks):
        blocks = blocks[heading + 1:]
    kept = [b for b in blocks if not _META_PARAGRAPH.match(b) and not _LINK_ONLY.match(b)] \
        if len(blocks) > 1 else blocks
    authors = _names_paragraph(kept[0], named) if len(kept) > 1 else ()
    text = " ".join(kept[1:] if authors else kept)
    for pattern in _BOILERPLATE:
        text = pattern.sub("", text, count=1)
    text = _TRAILING_IDS.sub("", text).strip()
    return ("" if text.casefold().strip(" .") in _NO_ABSTRACT else text), authors


def _doi(entry: Any) -> str:
    for key in ("prism_doi", "dc_identifier", "id", "link"):
        found = doi(_text(entry.get(key)))
        if found:
            return found
    for link in entry.get("links") or []:
        found = doi(_text(link.get("href")) if isinstance(link, dict) else "")
        if found:
            return found
    return ""


def _kind(entry: Any) -> str:
    return " ".join(_text(entry.get(k)) for k in ("dc_type", "prism_section", "prism_contenttype")).strip().lower()


def _entry(entry: Any, index: int, name: str, hints: ReadHints, excluded_types: set[str],
           excluded_titles: list[re.Pattern[str]]) -> ParsedPaper | None:
    title = _TITLE_PREFIX.sub("", plain(_text(entry.get("title"))).replace("\ufeff", "").strip())
    if not title:
        log.warning("%s: item %d has no title; skipped", name, index)
        return None
    kinds = {_text(entry.get(k)).strip().lower() for k in ("dc_type", "prism_section", "prism_contenttype")}
    kinds |= {_text(tag.get("term")).strip().lower() for tag in entry.get("tags") or [] if isinstance(tag, dict)}
    if kinds & excluded_types or any(p.search(title) for p in excluded_titles):
        log.debug("%s: item %d (%s, %s) is not research; dropped", name, index, title[:60], _kind(entry))
        return None
    link = _text(entry.get("link"))
    names = [_text(a.get("name")) for a in entry.get("authors") or [] if isinstance(a, dict)]
    if not any(names):
        names = [_text(entry.get("author"))]
    labelled = _labelled(entry)
    if not any(names):
        names = [labelled.get("authors", "")]
    abstract, listed = _abstract(entry, labelled, people(names))
    if abstract.casefold() == title.casefold():  # a publisher repeating the title is no abstract
        abstract = ""
    return ParsedPaper(title=title, abstract=abstract, authors=listed or people(names), url=link,
                       arxiv_id=arxiv_id(link) or arxiv_id(_text(entry.get("id"))),
                       published=_text(entry.get("published") or entry.get("prism_publicationdate")
                                       or entry.get("updated")),
                       line=index, doi=_doi(entry) or doi(labelled.get("doi", "")))


def parse(data: bytes, name: str, hints: ReadHints | None = None) -> ParsedBatch:
    hints = hints or ReadHints()
    if _HTML_PAGE.match(data[:512]):
        raise InputError(name, "the address answered an HTML page, not an RSS or Atom feed")
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    problem = parsed.get("bozo_exception")
    if parsed.bozo and not parsed.entries and not parsed.feed:
        raise InputError(name, f"not an RSS or Atom feed ({problem or 'unreadable XML'})")
    # feedparser's loose parser would keep the items before a cut, the last one cut too
    refused = cut_off(data, name, problem, problem.getLineNumber()) \
        if parsed.bozo and hasattr(problem, "getLineNumber") else None
    if refused:
        raise refused
    excluded_types = {t.lower() for t in (NOT_RESEARCH if hints.exclude_types is None else hints.exclude_types)}
    try:
        excluded_titles = [re.compile(p, re.I) for p in hints.exclude_titles]
    except re.error as exc:
        raise InputError(name, f"exclude_titles: not a valid pattern ({exc})") from None
    entries = [p for i, e in enumerate(parsed.entries, start=1)
               if (p := _entry(e, i, name, hints, excluded_types, excluded_titles)) is not None]
    return ParsedBatch(format="feed", entries=tuple(entries), batch_date=hints.batch_date)


def looks_like(head: bytes) -> bool:
    """XML with an rss, RDF or Atom root that is not arXiv's (the arxiv reader knows those):
    a feed of arXiv papers made elsewhere (a lab's query, a mirror) is read as any feed."""
    channel = _FIRST_ITEM.split(head, maxsplit=1)[0]
    return head.startswith(b"<") and b"arxiv.org" not in channel.lower() \
        and any(tag in head for tag in (b"<rss", b"<rdf:RDF", b"<feed", b"<RDF"))


def read(data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
    return parse(data, name, hints)
