"""How an ingested entry is matched to the papers already stored: by any of its ids or their
aliases, then arXiv id, then title; new papers added, matched ones completed, the other ids
kept as aliases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from recommender.base.domain import ParsedPaper
from recommender.base.text import title_hash_id, title_key
from recommender.store.database import chunks
from recommender.store.paper_ids import generated_id, ids_of, natural_id
from recommender.store.schema import PaperAliasRow, PaperRow

_PARTICLES = {"de", "da", "di", "du", "do", "le", "la", "van", "von", "der", "den", "del", "dos", "das", "al", "el",
              "and", "et"}
_FILLABLE = ("arxiv_id", "authors", "url", "abstract", "published", "category")


def resolve_entries(conn: Connection, entries: Sequence[ParsedPaper],
                    now: datetime) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Match entries to stored papers (any of their ids or aliases, then arXiv id, then title),
    add the new ones, and return the id of each entry and the rows of the papers added.
    Matched papers keep their id and gain the fields they lacked (an arXiv id, authors, a URL);
    the other ids the entry names stay aliases of it (so a preprint and its journal version
    are one paper). Later copies within the batch reuse the first."""
    given = list({i for e in entries for i in (*ids_of(e), natural_id(e))})
    arxivs = list({e.arxiv_id for e in entries if e.arxiv_id})
    entry_keys = [title_key(e.title) if e.title else "" for e in entries]
    keys = list({k for k in entry_keys if k})
    columns = (PaperRow.id, PaperRow.title_key, *(getattr(PaperRow, c) for c in _FILLABLE))
    known_as: dict[str, str] = {}  # alias -> paper id, for the ids the entries name
    for chunk in chunks(given):
        known_as.update((alias, pid) for alias, pid in conn.execute(
            select(PaperAliasRow.alias, PaperAliasRow.paper_id).where(PaperAliasRow.alias.in_(chunk))))
    stored: dict[str, Any] = {}
    for column, wanted in ((PaperRow.id, given + list(set(known_as.values()))), (PaperRow.arxiv_id, arxivs),
                           (PaperRow.title_key, keys)):
        for chunk in chunks(wanted):
            for row in conn.execute(select(*columns).where(column.in_(chunk)).order_by(PaperRow.created_at, PaperRow.id)):
                stored.setdefault(row.id, row)
    by_id = {pid: pid for pid in stored}
    by_id.update((alias, pid) for alias, pid in known_as.items() if pid in stored and alias not in by_id)
    by_arxiv = {row.arxiv_id: pid for pid, row in stored.items() if row.arxiv_id}
    by_key: dict[str, list[str]] = {}
    authors_of: dict[str, Sequence[str]] = {}
    for stored_id, stored_row in stored.items():
        by_key.setdefault(stored_row.title_key, []).append(stored_id)
        authors_of[stored_id] = stored_row.authors or ()
    ids: list[str] = []
    new_rows: list[dict[str, Any]] = []
    fills: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    taken = set(by_id)
    created: set[str] = set()
    for entry, key in zip(entries, entry_keys, strict=True):
        named = ids_of(entry)
        generated = by_id.get(generated_id(entry)) if not named else None
        pid = next((by_id[i] for i in named if i in by_id), None) \
            or (by_arxiv.get(entry.arxiv_id) if entry.arxiv_id else None) \
            or next((k for k in by_key.get(key, ()) if _may_be(entry, authors_of.get(k, ()))), None) \
            or (generated if generated and _may_be(entry, authors_of.get(generated, ())) else None)
        natural = natural_id(entry)
        if pid is None:
            pid = natural
            if pid in taken:  # a different work under the same title (or the id of another)
                pid = title_hash_id(f"{pid} {entry.title} {entry.abstract} {' '.join(entry.authors)}")
        if pid not in created and pid not in stored:
            taken.add(pid)
            created.add(pid)
            new_rows.append({
                "id": pid, "arxiv_id": entry.arxiv_id or None, "title_key": key, "title": entry.title,
                "abstract": entry.abstract, "authors": list(entry.authors), "url": entry.url,
                "published": entry.published[:64], "category": entry.category[:32],
            })
        elif pid in stored:
            _fill_in(stored[pid], entry, fills.setdefault(pid, {}), by_arxiv)
        for other in named:
            by_id.setdefault(other, pid)
        if entry.arxiv_id:
            by_arxiv.setdefault(entry.arxiv_id, pid)
        if key and pid not in by_key.setdefault(key, []):
            by_key[key].append(pid)
        authors_of.setdefault(pid, entry.authors)
        for other in dict.fromkeys([natural, *named]):
            if other != pid and (other not in taken or by_id.get(other) == pid) and len(other) <= 64:
                aliases.setdefault(other, pid)
        ids.append(pid)
    changed = bool(new_rows)
    for pid, values in fills.items():
        if values:
            conn.execute(update(PaperRow).where(PaperRow.id == pid).values(**values))
            changed = True
    for chunk in chunks(new_rows):
        conn.execute(insert(PaperRow), [dict(row, created_at=now) for row in chunk])
    _add_aliases(conn, aliases, new_rows)  # after the papers they name (a foreign key)
    return ids, new_rows, changed


def _may_be(entry: ParsedPaper, authors: Sequence[str]) -> bool:
    """Whether an entry whose title is a stored paper's may be that paper: not when both name
    authors and no surname is shared (two commentaries both titled "§ 305 BGB", two journals'
    "Editorial"). A preprint and its publication share their authors, however written."""
    ours, theirs = _surnames(entry.authors), _surnames(authors)
    if not ours or not theirs:  # nothing to tell them apart by
        return True
    return bool(ours & theirs)


def _surnames(names: Sequence[str]) -> set[str]:
    """The names' words of two letters or more but particles, in any script, case-folded and
    without accents: "J. Smith", "John Smith" and "SMITH John" share "smith", "Wei Li" and
    "Li W." share "li", "Иванов И.И." and "Иванов Иван" share "иванов"; a CJK name is one word."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", " ".join(names).casefold())
                     if not unicodedata.combining(c))
    return {w for w in re.findall(r"[^\W\d_]{2,}", folded) if w not in _PARTICLES}


def _add_aliases(conn: Connection, aliases: dict[str, str], new_rows: Sequence[dict[str, Any]]) -> None:
    """Record the aliases not known yet, leaving out any id that is (or becomes) a paper's own."""
    if not aliases:
        return
    own = {row["id"] for row in new_rows}
    known: set[str] = set()
    for chunk in chunks(list(aliases)):
        known.update(conn.execute(select(PaperAliasRow.alias).where(PaperAliasRow.alias.in_(chunk))).scalars())
        known.update(conn.execute(select(PaperRow.id).where(PaperRow.id.in_(chunk))).scalars())
    fresh = [{"alias": a, "paper_id": pid} for a, pid in aliases.items() if a not in known and a not in own]
    for chunk in chunks(fresh):
        conn.execute(insert(PaperAliasRow), list(chunk))


def _fill_in(row: Any, entry: ParsedPaper, values: dict[str, Any], by_arxiv: dict[str, str]) -> None:
    """Fields a stored paper lacks and this entry has (never overwriting what is stored)."""
    if entry.arxiv_id and not row.arxiv_id and "arxiv_id" not in values and entry.arxiv_id not in by_arxiv:
        values["arxiv_id"] = entry.arxiv_id
        by_arxiv[entry.arxiv_id] = row.id
    if entry.authors and not row.authors and "authors" not in values:
        values["authors"] = list(entry.authors)
    if entry.url and not row.url and "url" not in values:
        values["url"] = entry.url
    if entry.abstract and not row.abstract and "abstract" not in values:
        values["abstract"] = entry.abstract
    if entry.published and not row.published and "published" not in values:
        values["published"] = entry.published[:64]
    if entry.category and not row.category and "category" not in values:
        values["category"] = entry.category[:32]
