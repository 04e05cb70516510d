"""Papers: ingest (entries matched to stored papers by store.paper_matching), aliases,
lookups and the batches they arrived in."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Text,
    and_,
    cast,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout alone orders writers across processes
    fcntl = None  # type: ignore[assignment]

from recommender.base.domain import Paper, ParsedBatch, ParsedPaper
from recommender.base.errors import NotFoundError
from recommender.base.text import arxiv_id, doi
from recommender.store.database import Database, chunks, utcnow
from recommender.store.paper_matching import resolve_entries
from recommender.store.schema import (
    BatchEntryRow,
    BatchRow,
    DigestEntryRow,
    DigestRow,
    PaperAliasRow,
    PaperRow,
)


@dataclass(frozen=True)
class IngestResult:
    batch_id: int | None
    entries: int
    new_papers: int
    duplicates: int
    skipped: bool = False


@dataclass(frozen=True)
class BatchInfo:
    id: int
    source: str
    format: str
    batch_date: str
    ingest_run: str
    entry_count: int
    created_at: datetime


Found = TypeVar("Found")  # what a look-up by id keeps of each paper


def _paper(row: Any) -> Paper:
    return Paper(
        id=row.id, title=row.title, abstract=row.abstract, authors=tuple(row.authors or ()),
        url=row.url or "", arxiv_id=row.arxiv_id or "", published=row.published or "", category=row.category or "",
    )


class PaperRows(Database):
    """Ingest, papers and batches."""

    # -- ingest -----------------------------------------------------------------------------
    def ingest_batch(self, parsed: ParsedBatch, source: str, content_hash: str, run_id: str) -> IngestResult:
        """Store a whole batch or nothing: papers matched or added, then the ordered entries."""
        with self.write() as conn:
            if conn.execute(select(BatchRow.id).where(BatchRow.content_hash == content_hash)).first():
                return IngestResult(None, len(parsed.entries), 0, len(parsed.entries), skipped=True)
            now = utcnow()
            paper_ids, new_rows, changed = resolve_entries(conn, parsed.entries, now)
            batch_id = conn.execute(
                insert(BatchRow).values(
                    source=source[:200], format=parsed.format, batch_date=parsed.batch_date,
                    content_hash=content_hash, ingest_run=run_id, entry_count=len(paper_ids), created_at=now,
                ).returning(BatchRow.id)
            ).scalar_one()
            entries = [{"batch_id": batch_id, "position": i, "paper_id": pid} for i, pid in enumerate(paper_ids)]
            for chunk in chunks(entries, 5000):
                conn.execute(insert(BatchEntryRow), list(chunk))
            if changed:
                self._bump_corpus_version(conn)
        return IngestResult(batch_id, len(paper_ids), len(new_rows), len(paper_ids) - len(new_rows))

    def add_papers(self, entries: Sequence[ParsedPaper]) -> tuple[list[str], int]:
        """Add papers without making them new digest entries (BibTeX import); returns ids, count added."""
        with self.write() as conn:
            paper_ids, new_rows, changed = resolve_entries(conn, entries, utcnow())
            if changed:
                self._bump_corpus_version(conn)
        return paper_ids, len(new_rows)

    # -- papers -----------------------------------------------------------------------------
    def paper(self, paper_id: str) -> Paper:
        """The paper with this id, one of its aliases, or (for an arXiv id in any usual form)
        that arXiv id."""
        found = self.resolve_ids([paper_id]).get(paper_id)
        with self.read() as conn:
            row = conn.execute(select(PaperRow).where(PaperRow.id == found)).first() if found else None
        if row is None:
            raise NotFoundError(f"no paper with id {paper_id!r} (see `recommender papers search`)")
        return _paper(row)

    def resolve_ids(self, references: Sequence[str]) -> dict[str, str]:
        """reference -> stored paper id, for the references that name one: a paper id, an
        alias (an id the paper was known by before it was matched), or an arXiv id in any
        usual form (``arXiv:1706.03762v5``, an arxiv.org URL, the 10.48550 DOI), or a DOI in
        any usual form (``doi:``, a doi.org URL, a bioRxiv version suffix)."""
        refs = list(dict.fromkeys(r for r in references if r))
        found: dict[str, str] = {}
        arxivs = {r: arxiv_id(r) for r in refs}
        with self.read() as conn:
            for chunk in chunks(refs):
                found.update((pid, pid) for pid in conn.execute(select(PaperRow.id).where(PaperRow.id.in_(chunk))).scalars())
                for alias, pid in conn.execute(select(PaperAliasRow.alias, PaperAliasRow.paper_id)
                                               .where(PaperAliasRow.alias.in_(chunk))):
                    found.setdefault(alias, pid)
            wanted = {a for r, a in arxivs.items() if a and r not in found}
            by_arxiv: dict[str, str] = {}
            for chunk in chunks(sorted(wanted)):
                by_arxiv.update((a, p) for a, p in conn.execute(select(PaperRow.arxiv_id, PaperRow.id)
                                                                .where(PaperRow.arxiv_id.in_(chunk))) if a)
                for alias, pid in conn.execute(select(PaperAliasRow.alias, PaperAliasRow.paper_id)
                                               .where(PaperAliasRow.alias.in_(chunk))):
                    by_arxiv.setdefault(alias, pid)
        for ref, arxiv in arxivs.items():
            if ref not in found and arxiv in by_arxiv:
                found[ref] = by_arxiv[arxiv]
        dois = {r: d for r in refs if r not in found and (d := doi(r)) and d != r}
        if dois:
            by_doi = self.resolve_ids(list(set(dois.values())))
            found.update((ref, by_doi[d]) for ref, d in dois.items() if d in by_doi)
        return found

    def linked_paper(self, digest_id: int, position: int,
                     connection: Connection | None = None) -> tuple[int | None, bool, Paper | None]:
        """What a digest link points to: (the digest's owner or None when the digest is gone,
        whether the entry exists, the entry's paper or None when it is gone)."""
        return self.linked_papers([(digest_id, position)], connection)[(digest_id, position)]

    def linked_papers(self, links: Sequence[tuple[int, int]], connection: Connection | None = None,
                      ) -> dict[tuple[int, int], tuple[int | None, bool, Paper | None]]:
        """``linked_paper`` of many (digest id, position) links, in one query."""
        wanted = sorted(set(links))
        if not wanted:
            return {}
        stmt = (select(DigestRow.id.label("digest_id"), DigestRow.user_id, DigestEntryRow.position, PaperRow)
                .select_from(DigestRow)
                .outerjoin(DigestEntryRow, and_(DigestEntryRow.digest_id == DigestRow.id,
                                                tuple_(DigestEntryRow.digest_id, DigestEntryRow.position).in_(wanted)))
                .outerjoin(PaperRow, PaperRow.id == DigestEntryRow.paper_id)
                .where(DigestRow.id.in_(sorted({d for d, _ in wanted}))))
        if connection is None:
            with self.read() as conn:
                rows = conn.execute(stmt).all()
        else:
            rows = connection.execute(stmt).all()
        owners = {row.digest_id: row.user_id for row in rows}
        found = {(row.digest_id, row.position): (row.user_id, True, _paper(row) if row.id is not None else None)
                 for row in rows if row.position is not None}
        return {link: found.get(link, (owners.get(link[0]), False, None)) for link in wanted}

    def papers(self, ids: Sequence[str] | None = None) -> list[Paper]:
        """Papers by id in the order given (unknown ids skipped), or all papers by id."""
        with self.read() as conn:
            if ids is None:
                return [_paper(r) for r in conn.execute(select(PaperRow).order_by(PaperRow.created_at, PaperRow.id))]
            found: dict[str, Paper] = {}
            for chunk in chunks(list(dict.fromkeys(ids))):
                # .all(): one fetch of the chunk (iterating the result fetches row by row, a
                # fifth of the whole command's star look-ups: bench/RESULTS.md)
                for row in conn.execute(select(PaperRow).where(PaperRow.id.in_(chunk))).all():
                    found[row.id] = _paper(row)
        return [found[i] for i in ids if i in found]

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.read() as conn:
            for chunk in chunks(list(set(ids))):
                found.update(conn.execute(select(PaperRow.id).where(PaperRow.id.in_(chunk))).scalars())
        return found

    def paper_texts(self) -> tuple[list[str], list[str], list[str]]:
        """All papers as (ids, titles, abstracts), for fitting the model: on SQLite in the order
        they were stored, so a batch's new papers are one run of the model's rows in source
        order (taken as a view when ranking, not copied), and read in one pass over the table;
        on PostgreSQL by id."""
        order = literal_column("papers.rowid") if self.engine.dialect.name == "sqlite" else PaperRow.id
        with self.read() as conn:
            rows = conn.execute(select(PaperRow.id, PaperRow.title, PaperRow.abstract).order_by(order)).all()
        return [r.id for r in rows], [r.title for r in rows], [r.abstract for r in rows]

    def abstract_share(self) -> float:
        """The share of the stored papers that have an abstract (0 without papers)."""
        with self.read() as conn:
            total, with_abstract = conn.execute(select(
                func.count(), func.count().filter(func.length(func.trim(PaperRow.abstract)) > 0))).one()
        return with_abstract / total if total else 0.0

    def search_papers(self, query: str, limit: int | None = None) -> list[Paper]:
        """Papers whose title, abstract or authors contain every word of ``query``."""
        words = [w for w in query.split() if w]
        stmt = select(PaperRow)
        for word in words:
            pattern = "%" + word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(
                func.lower(PaperRow.title).like(pattern, escape="\\"),
                func.lower(PaperRow.abstract).like(pattern, escape="\\"),
            ))
        stmt = stmt.order_by(PaperRow.title, PaperRow.id)
        if limit:
            stmt = stmt.limit(limit)
        with self.read() as conn:
            return [_paper(r) for r in conn.execute(stmt)]

    def titles(self, ids: Sequence[str] | None = None) -> dict[str, str]:
        """Title by id of these papers (unknown ids skipped), or of every paper."""
        return self._by_id(ids, (PaperRow.title,), lambda row: row.title)

    def titles_and_abstracts(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(title, abstract) by id of these papers (unknown ids skipped): what an explanation
        reads of the starred papers it names, without building whole papers (each with its
        authors' JSON decoded)."""
        return self._by_id(ids, (PaperRow.title, PaperRow.abstract), lambda row: (row.title, row.abstract))

    def _by_id(self, ids: Sequence[str] | None, columns: tuple[Any, ...], value: Callable[[Any], Found],
               ) -> dict[str, Found]:
        stmt = select(PaperRow.id, *columns)
        with self.read() as conn:
            if ids is None:
                return {r.id: value(r) for r in conn.execute(stmt)}
            found: dict[str, Found] = {}
            for chunk in chunks(list(dict.fromkeys(ids))):
                found.update((r.id, value(r)) for r in conn.execute(stmt.where(PaperRow.id.in_(chunk))).all())
        return found

    def find_by_title_key(self, key: str) -> list[Paper]:
        with self.read() as conn:
            return [_paper(r) for r in conn.execute(select(PaperRow).where(PaperRow.title_key == key))]

    # -- batches ----------------------------------------------------------------------------
    def batches(self) -> list[BatchInfo]:
        with self.read() as conn:
            rows = conn.execute(select(BatchRow).order_by(BatchRow.id)).all()
        return [BatchInfo(r.id, r.source, r.format, str(r.batch_date or ""), r.ingest_run, r.entry_count,
                          r.created_at) for r in rows]

    def latest_run_batch_ids(self) -> list[int]:
        """The batches stored by the most recent ingest run (one command or one fetch round)."""
        with self.read() as conn:
            last = conn.execute(select(BatchRow.ingest_run).order_by(BatchRow.id.desc()).limit(1)).scalar()
            if last is None:
                return []
            return list(conn.execute(select(BatchRow.id).where(BatchRow.ingest_run == last).order_by(BatchRow.id)).scalars())

    def all_batch_ids(self) -> list[int]:
        with self.read() as conn:
            return list(conn.execute(select(BatchRow.id).order_by(BatchRow.id)).scalars())

    def batch_papers(self, batch_ids: Sequence[int]) -> list[Paper]:
        """The papers of ``batch_entries``, in that order, in one query: the candidates of a
        ranking run. Only the columns a Paper holds are read, and authors are decoded here from
        their JSON text (SQLAlchemy's per-row result processing was most of the time)."""
        columns = (PaperRow.id, PaperRow.title, PaperRow.abstract, cast(PaperRow.authors, Text), PaperRow.url,
                   PaperRow.arxiv_id, PaperRow.published, PaperRow.category)
        with self.read() as conn:
            rows = conn.execute(
                select(*columns).join(BatchEntryRow, BatchEntryRow.paper_id == PaperRow.id)
                .where(BatchEntryRow.batch_id.in_(list(batch_ids)))
                .order_by(BatchEntryRow.batch_id, BatchEntryRow.position)
            ).all()
        papers: dict[str, Paper] = {}
        for paper_id, title, abstract, authors, url, paper_arxiv, published, category in rows:
            if paper_id not in papers:  # first position wins
                papers[paper_id] = Paper(id=paper_id, title=title, abstract=abstract,
                                         authors=tuple(json.loads(authors) or ()) if authors else (),
                                         url=url or "", arxiv_id=paper_arxiv or "", published=published or "",
                                         category=category or "")
        return list(papers.values())

    def batch_entries(self, batch_ids: Sequence[int]) -> list[str]:
        """Paper ids of these batches in source order, each paper once (first position wins)."""
        with self.read() as conn:
            rows = conn.execute(
                select(BatchEntryRow.paper_id).where(BatchEntryRow.batch_id.in_(list(batch_ids)))
                .order_by(BatchEntryRow.batch_id, BatchEntryRow.position)
            ).scalars()
            return list(dict.fromkeys(rows))
