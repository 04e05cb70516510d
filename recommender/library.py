"""A user's library: bulk star imports (CSV/JSONL from another tool, BibTeX/Zotero exports)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recommender.config import Config
from recommender.errors import InputError, NotFoundError
from recommender.pipeline import read_input
from recommender.sources.lines import decoded_lines, json_document
from recommender.store import Store
from recommender.text import arxiv_id, title_key


@dataclass(frozen=True)
class StarImport:
    lines: int
    added: int
    problems: list[str]


@dataclass(frozen=True)
class BibtexImport:
    entries: int
    matched: int
    added_papers: int
    new_stars: int


def resolve_references(store: Store, references: Sequence[str]) -> list[str]:
    """Paper ids for references given as ids, arXiv ids/URLs or exact titles; unknown ones fail clearly."""
    ids = []
    known = store.existing_ids(list(references))
    for ref in references:
        if ref in known:
            ids.append(ref)
            continue
        arxiv = arxiv_id(ref)
        if arxiv and arxiv in store.existing_ids([arxiv]):
            ids.append(arxiv)
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


def import_stars(store: Store, config: Config, path: Path, skip_unknown: bool) -> StarImport:
    rows = _rows(path, read_input(path))
    emails = {u.email.lower() for u in config.users}
    known_ids = store.existing_ids([pid for _, _, pid in rows])
    user_ids = store.sync_users(emails)
    problems, pairs = [], []
    for number, email, paper_id in rows:
        if email.lower() not in emails:
            problems.append(f"{path}:{number}: user {email!r} is not in the config")
        elif paper_id not in known_ids:
            problems.append(f"{path}:{number}: unknown paper id {paper_id!r}")
        else:
            pairs.append((user_ids[email.lower()], paper_id))
    if problems and not skip_unknown:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(str(path), f"nothing imported: {problems[0].split(': ', 1)[1]}{more}; "
                         "fix the file or pass --skip-unknown", line=int(problems[0].split(":")[1]))
    added = store.star_many(pairs, origin="import")
    return StarImport(lines=len(rows), added=added, problems=problems)


def import_bibtex(store: Store, email: str, path: Path) -> BibtexImport:
    # Imported here: bibtexparser would cost every other command's start-up.
    from recommender.sources import bibtex

    entries = bibtex.parse(read_input(path), str(path))
    ids, added = store.add_papers(entries)
    new_stars = store.star(store.user_id(email), ids, origin="bibtex")
    return BibtexImport(entries=len(entries), matched=len(entries) - added, added_papers=added, new_stars=new_stars)
