"""A user's library: stars by reference (id, arXiv id, title), bulk star imports (CSV/JSONL
from another tool), and reference-manager exports (BibTeX, Zotero CSV, RIS)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.base.config import Config
from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError, NotFoundError, RecommenderError
from recommender.base.formats import TOPICS_FROM
from recommender.base.text import arxiv_id, title_key
from recommender.pipeline import read_input
from recommender.sources.lines import decoded_lines, json_document
from recommender.store import Store

if TYPE_CHECKING:
    from recommender.sources.arxiv_api import ArxivLookup


@dataclass(frozen=True)
class StarImport:
    lines: int
    added: int
    problems: list[str]


@dataclass(frozen=True)
class LibraryImport:
    entries: int  # entries read from the files
    matched: int  # of them, papers already stored
    added: int  # stored as new papers
    skipped: list[str]  # "file:line: reason" of each entry that could not be read
    new_stars: int
    completed: int = 0  # entries whose abstract came from the arXiv API
    unknown: list[str] = field(default_factory=list)  # arXiv ids the API does not know
    lookup_failed: str = ""  # why the arXiv lookup failed, if it did
    lookup_skipped: int = 0  # entries without abstract not looked up (--offline)
    topics: dict[str, int] = field(default_factory=dict)  # topic -> papers starred in it (--topics-from)
    titles_only: int = 0  # imported papers that still have no abstract (known by their titles alone)
    titles_only_arxiv: int = 0  # of them, those with an arXiv id (the API could fill them in)

    def line(self) -> str:
        parts = [f"{self.entries} imported", f"{self.matched} matched stored papers", f"{self.added} added",
                 f"{len(self.skipped)} skipped", f"{self.new_stars} new star(s)"]
        if self.completed:
            parts.append(f"{self.completed} completed from arXiv")
        return ", ".join(parts)

    def titles_only_note(self) -> str:
        """What a profile built from titles alone means, and how to fill the abstracts in; ""
        when every imported paper has an abstract."""
        if not self.titles_only:
            return ""
        note = (f"{self.titles_only} of {self.entries} imported papers have no abstract: your profile knows them by "
                "their titles alone. Add the abstracts in your reference manager and import again (Zotero: the "
                "item's Abstract field; Zotero's CSV and Better BibTeX exports carry it)")
        if self.titles_only_arxiv:
            how = "run the import without --offline" if self.lookup_skipped else "run the import again later"
            note += f"; {self.titles_only_arxiv} of them have an arXiv id: {how} to fetch theirs from arXiv"
        return note


def arxiv_lookup(config: Config) -> ArxivLookup:
    """The arXiv API client for papers named only by their arXiv id (``[lookup]``)."""
    from recommender.sources.arxiv_api import ArxivLookup  # on use: it imports httpx

    return ArxivLookup(config.lookup)


def resolve_references(store: Store, references: Sequence[str], lookup: ArxivLookup | None = None) -> list[str]:
    """Paper ids for references given as ids (or aliases), arXiv ids in any usual form, or
    exact titles; unknown ones fail clearly. An arXiv id not stored yet is looked up on the
    arXiv API (with ``lookup``), stored, and used."""
    known = store.resolve_ids(list(references))
    missing = {ref: arxiv_id(ref) for ref in references if ref not in known and arxiv_id(ref)}
    if missing:
        if lookup is None:
            raise NotFoundError(f"no stored paper {next(iter(missing))!r} (without --offline it is looked up on arXiv)")
        result = lookup.fetch(sorted(set(missing.values())))
        if result.failed:
            raise RecommenderError(f"could not look up {', '.join(sorted(set(missing.values())))} on arXiv: {result.failed}")
        if result.unknown:
            raise NotFoundError(f"arXiv has no paper {result.unknown[0]!r}")
        store.add_papers(list(result.found.values()))
        known.update(store.resolve_ids(list(missing)))
    ids = []
    for ref in references:
        if ref in known:
            ids.append(known[ref])
            continue
        by_title = store.find_by_title_key(title_key(ref))
        if len(by_title) == 1:
            ids.append(by_title[0].id)
            continue
        raise NotFoundError(f"no paper with id or title {ref!r} (see `recommender papers search`)")
    return ids


def _rows(path: Path, data: bytes) -> list[tuple[int, str, str]]:
    """(line, user, paper_id) from CSV with a header or JSONL."""
    name = str(path)
    lines = list(decoded_lines(data, name))  # refuses non-UTF-8 with its line number
    first = next((text for _, text in lines if text.strip()), "")
    if not first:
        raise InputError(name, "empty file: no stars to import")
    rows = []
    if first.lstrip().startswith("{"):
        for number, text in lines:
            if not text.strip():
                continue
            record = json_document(text, name, number)
            if not isinstance(record, dict) or not isinstance(record.get("user"), str) \
                    or not isinstance(record.get("paper_id"), (str, int)):
                raise InputError(name, "expected an object with string fields 'user' and 'paper_id'", number)
            rows.append((number, record["user"].strip(), str(record["paper_id"]).strip()))
        return rows
    reader = csv.reader(io.StringIO("\n".join(text for _, text in lines)))
    header = [h.strip().lower() for h in next(reader)]
    if "user" not in header or "paper_id" not in header:
        raise InputError(name, "CSV header must name the columns user and paper_id", 1)
    u, p = header.index("user"), header.index("paper_id")
    for number, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) <= max(u, p):
            raise InputError(name, f"expected {len(header)} columns, got {len(record)}", number)
        rows.append((number, record[u].strip(), record[p].strip()))
    return rows


def import_stars(store: Store, config: Config, path: Path, skip_unknown: bool,
                 lookup: ArxivLookup | None = None) -> StarImport:
    """Star (user, paper) rows; a paper named by an arXiv id that is not stored is looked up on
    the arXiv API (with ``lookup``) and stored first. Nothing is starred when a row is bad,
    unless ``skip_unknown``."""
    rows = _rows(path, read_input(path))
    emails = {u.email.lower() for u in config.users}
    known_ids = store.resolve_ids([pid for _, _, pid in rows])
    missing = sorted({arxiv_id(pid) for _, _, pid in rows if pid not in known_ids and arxiv_id(pid)})
    if missing and lookup is not None:
        found = lookup.fetch(missing).found
        if found:
            store.add_papers(list(found.values()))
            known_ids = store.resolve_ids([pid for _, _, pid in rows])
    user_ids = store.sync_users(emails)
    problems, pairs = [], []
    for number, email, paper_id in rows:
        if email.lower() not in emails:
            problems.append(f"{path}:{number}: user {email!r} is not in the config")
        elif paper_id not in known_ids:
            problems.append(f"{path}:{number}: unknown paper id {paper_id!r}")
        else:
            pairs.append((user_ids.of(email), known_ids[paper_id]))
    if problems and not skip_unknown:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(str(path), f"nothing imported: {problems[0].split(': ', 1)[1]}{more}; "
                         "fix the file or pass --skip-unknown", line=int(problems[0].split(":")[1]))
    added = store.star_many(pairs, origin="import")
    return StarImport(lines=len(rows), added=added, problems=problems)


@dataclass(frozen=True)
class LibraryOptions:
    """How a library is read and filed: its format (``auto`` detects it), ``strict`` (refuse
    the files when an entry cannot be read), the reader's ``topic`` for the stars, or
    ``topics_from`` (see ``TOPICS_FROM``) with the reader's ``configured`` topic names."""

    fmt: str = "auto"
    strict: bool = False
    topic: str | None = None
    topics_from: str | None = None
    configured: Sequence[str] = ()


def import_library(store: Store, email: str, paths: Sequence[Path], options: LibraryOptions = LibraryOptions(),
                   lookup: ArxivLookup | None = None, progress: Callable[[int], None] | None = None) -> LibraryImport:
    """Star the papers of reference-manager exports (BibTeX, Zotero CSV, RIS), matched to
    stored papers by arXiv id or title; entries not stored yet are added as papers (not as new
    digest entries). Entries that cannot be read are skipped and named (``options.strict``: the
    files are refused instead). Entries with an arXiv id but no abstract get title, authors and
    abstract from the arXiv API (with ``lookup``); a lookup that fails leaves them as they were.
    With ``options.topic``, the stars go to (or move to) that topic of the reader; with
    ``options.topics_from`` (see ``TOPICS_FROM``), each to one of the folders or keywords the
    library gives it (see ``entry_topics``), ``topic`` for those it gives none."""
    from recommender.sources import read_library  # on use: the readers import their parsers

    fmt, strict, topic, topics_from = options.fmt, options.strict, options.topic, options.topics_from

    reads = [read_library(read_input(path), str(path), fmt) for path in paths]
    skipped = [line for r in reads for line in r.skipped]
    if strict and skipped:
        raise RecommenderError(f"{skipped[0]} (--strict: nothing was imported)")
    entries = [entry for r in reads for entry in r.entries]
    if not entries:
        if fmt != "auto":  # read in the format named: is it another?
            from recommender.sources import detect_library_format

            try:
                seems = detect_library_format(read_input(paths[0]), str(paths[0]))
            except InputError:
                seems = fmt
            if seems != fmt:
                raise InputError(str(paths[0]), f"nothing could be read as {fmt}: it looks like {seems} "
                                                 "(leave out --format to read it as such)")
        raise InputError(str(paths[0]), f"nothing could be read ({skipped[0]})" if skipped else "no entries in it")
    completed, unknown, failed = 0, [], ""
    wanted = [e.arxiv_id for e in entries if e.arxiv_id and not e.abstract]
    stored = store.resolve_ids(wanted)
    complete = {p.id for p in store.papers(list(set(stored.values()))) if p.abstract}
    wanted = [i for i in dict.fromkeys(wanted) if stored.get(i) not in complete]
    if wanted and lookup is not None:
        result = lookup.fetch(wanted, progress)
        unknown, failed = result.unknown, result.failed
        entries = [_completed(e, result.found.get(e.arxiv_id)) for e in entries]
        completed = sum(1 for e in wanted if e in result.found)
    ids, added = store.add_papers(entries)
    user_id = store.user_id(email)
    if topics_from is None:
        new_stars = store.star(user_id, ids, origin="library", topic=topic)
        found: dict[str, int] = {}
    else:
        chosen = [t or topic for t in entry_topics(entries, TOPICS_FROM[topics_from], options.configured)]
        new_stars = store.star_many([(user_id, i) for i in ids], "library", chosen)
        found = dict(Counter(t for t in chosen if t is not None).most_common())
    bare = [p for p in store.papers(list(dict.fromkeys(ids))) if not p.abstract]
    return LibraryImport(topics=found, entries=len(entries), matched=len(entries) - added, added=added, skipped=skipped,
                         new_stars=new_stars, completed=completed, unknown=unknown, lookup_failed=failed,
                         lookup_skipped=len(wanted) if lookup is None else 0, titles_only=len(bare),
                         titles_only_arxiv=sum(1 for p in bare if p.arxiv_id and p.arxiv_id not in unknown))


# What --topics-from reads from an entry: its folders (collections, groups), or its keywords and tags.
def entry_topics(entries: Sequence[ParsedPaper], kind: str, configured: Sequence[str] = ()) -> list[str | None]:
    """One topic per entry from its ``kind`` ("groups" or "keywords"): a configured topic's name
    if the entry carries one (any case), else the name most entries of the library share, so a
    paper filed in several places joins the largest (between equals, the one it lists first);
    None for an entry that carries none. Names differing only in case are one name (real
    libraries hold "Zonemaps" and "zonemaps", "Deepfake detection" and "deepfake detection"),
    spelt as most entries spell it."""
    known = {name.lower(): name for name in configured}
    labels = [getattr(entry, kind) for entry in entries]
    spellings = Counter(label for names in labels for label in names)
    counts = Counter(folded for names in labels for folded in {n.lower() for n in names})
    spelt: dict[str, str] = {}
    for label, _ in spellings.most_common():  # most common first, then first seen
        spelt.setdefault(label.lower(), label)
    chosen: list[str | None] = []
    for names in labels:
        folded = list(dict.fromkeys(n.lower() for n in names))
        mine = next((known[n] for n in folded if n in known), None)
        best = min(folded, key=lambda n: (-counts[n], folded.index(n))) if folded else None
        chosen.append(mine or (spelt[best] if best is not None else None))
    return chosen


def _completed(entry: ParsedPaper, found: ParsedPaper | None) -> ParsedPaper:
    """The entry with what arXiv knows filled in where the file had nothing."""
    if found is None:
        return entry
    return replace(entry, title=entry.title or found.title, abstract=entry.abstract or found.abstract,
                   authors=entry.authors or found.authors, url=entry.url or found.url,
                   published=entry.published or found.published, category=entry.category or found.category)
