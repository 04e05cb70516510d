"""Store: every read and write of the database goes through this class.

SQLite runs in WAL mode with a busy timeout so the CLI, the daemon and the web
endpoint can share one file; write transactions start with BEGIN IMMEDIATE so two
writers queue on the busy timeout instead of failing on a lock upgrade. The same
code runs on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Text,
    and_,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout alone orders writers across processes
    fcntl = None  # type: ignore[assignment]

from recommender.config import masked_url
from recommender.domain import Paper, ParsedBatch, ParsedPaper
from recommender.errors import NotFoundError, RecommenderError, SchemaError
from recommender.store import migrate, model_files
from recommender.store.schema import (
    SIGNAL_GENERATIONS,
    BatchEntryRow,
    BatchRow,
    DigestEntryRow,
    DigestRow,
    FeedbackRow,
    MetaRow,
    ModelRow,
    PaperAliasRow,
    PaperRow,
    ProfileRow,
    StarRow,
    UserRow,
)
from recommender.text import arxiv_id, title_hash_id, title_key

SQLITE_BUSY_TIMEOUT_MS = 30_000  # $RECOMMENDER_BUSY_TIMEOUT (seconds) overrides

log = logging.getLogger(__name__)


def busy_timeout_ms() -> int:
    value = os.environ.get("RECOMMENDER_BUSY_TIMEOUT", "")
    try:
        return max(0, int(float(value) * 1000)) if value else SQLITE_BUSY_TIMEOUT_MS
    except ValueError:
        return SQLITE_BUSY_TIMEOUT_MS
_CHUNK = 500


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


def utcnow() -> datetime:
    return datetime.now(UTC)


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class WriterLock:
    """SQLite's single writer, queued for here instead of in SQLite's busy handler, which sleeps
    longer and longer between retries (up to 100 ms: a long tail under load). Threads of one
    process hand over on a lock at once; processes sharing the file take an exclusive flock
    of a file beside it, polled every millisecond up to the busy timeout (after which SQLite's
    own timeout and error apply). Reentrant within a thread."""

    def __init__(self, database: Path | None):
        self._threads = threading.RLock()
        self._depth = 0
        self._path = database.with_name(database.name + "-writer") if database is not None and fcntl else None
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1:
            self._lock_file()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._depth == 1 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._depth -= 1
        self._threads.release()

    def _lock_file(self) -> None:
        if self._path is None:
            return
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only folder: SQLite's busy timeout alone orders the writers
            self._path = None
            return
        deadline = time.monotonic() + busy_timeout_ms() / 1000
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return  # let SQLite wait and report the lock in its own words
                time.sleep(0.001)


def _paper(row: Any) -> Paper:
    return Paper(
        id=row.id, title=row.title, abstract=row.abstract, authors=tuple(row.authors or ()),
        url=row.url or "", arxiv_id=row.arxiv_id or "", published=row.published or "",
    )


class Store:
    def __init__(self, engine: Engine, keep_models: bool = False):
        self.engine = engine
        self._sqlite_writer = WriterLock(self.sqlite_path) if engine.dialect.name == "sqlite" else None
        # kind -> (stamp, model) when ``keep_models``: the last model loaded or saved, handed out
        # again (the same object, not a copy) while the stored row keeps that stamp. For a store
        # that serves many commands (`recommender warm`); one command loads each model once.
        self._models: dict[str, tuple[str, Any]] | None = {} if keep_models else None
        self._stamps: dict[str, str] = {}

    @classmethod
    def open(cls, url: str, keep_models: bool = False) -> Store:
        try:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": busy_timeout_ms() / 1000})
                _configure_sqlite(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise RecommenderError(f"cannot open database {masked_url(url)}: {exc}") from None
        return cls(engine, keep_models)

    def close(self) -> None:
        self.engine.dispose()

    def stop_automatic_checkpoints(self) -> None:
        """SQLite: this process's connections stop checkpointing the write-ahead log inside the
        commit that fills it (see ``store.checkpoints``); whoever calls this checkpoints instead."""
        if not event.contains(self.engine, "connect", _no_automatic_checkpoint):  # once per store
            event.listen(self.engine, "connect", _no_automatic_checkpoint)
            self.engine.dispose()  # connections already pooled reopen with it

    def checkpoint(self) -> tuple[int, int, int]:
        """SQLite: a PASSIVE checkpoint of the write-ahead log (waits for no reader or writer):
        (1 if it could not run, frames in the log, frames checkpointed)."""
        with self.engine.connect() as connection:
            busy, frames, done = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(busy), int(frames), int(done)

    @contextmanager
    def for_forked_child(self) -> Iterator[Store]:
        """A store of its own for a process forked from ours: the pooled connections and the
        writer lock it inherited are the parent's (sharing them corrupts both sides' state)."""
        self.engine.dispose(close=False)
        store = Store.open(self.engine.url.render_as_string(hide_password=False))
        store._stamps = dict(self._stamps)  # the child ranks with the models this store loaded
        try:
            yield store
        finally:
            store.close()

    # -- schema -----------------------------------------------------------------------------
    @property
    def sqlite_path(self) -> Path | None:
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database)

    def upgrade_schema(self) -> tuple[str | None, str]:
        if self.sqlite_path is not None:
            self._create_private(self.sqlite_path)
        return self._guard(lambda: migrate.upgrade(self.engine))

    @staticmethod
    def _create_private(database: Path) -> None:
        """The database file (and a folder for it) created owner-only, whatever the umask:
        SQLite gives its -wal and -shm files the database file's mode."""
        if not database.parent.exists():
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not database.exists():
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(database, 0o600)  # (the umask may have taken bits away, never added any)

    def tighten_permissions(self) -> list[str]:
        """Make the SQLite database and everything beside it that it owns owner-only (0600
        files, 0700 folders); the paths changed, with their old modes."""
        changed: list[str] = []
        database = self.sqlite_path
        if database is None:
            return changed
        beside = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal", "-writer")]
        models = database.with_name(database.name + "-models")
        paths = beside + ([models, *models.iterdir()] if models.is_dir() else [])
        for path in paths:
            try:
                mode = path.stat().st_mode & 0o777
            except FileNotFoundError:
                continue
            wanted = 0o700 if path.is_dir() else 0o600
            if mode & 0o077:
                os.chmod(path, mode & wanted)
                changed.append(f"{path} (was {mode:04o})")
        return changed

    def check_schema(self) -> None:
        if self.sqlite_path is not None and not self.sqlite_path.exists():
            raise SchemaError(f"{self.sqlite_path}: no database yet; run `recommender init` first")
        self._guard(lambda: migrate.check(self.engine))

    def _guard(self, action: Any) -> Any:
        try:
            return action()
        except OperationalError as exc:
            raise RecommenderError(f"database error: {exc.orig}") from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite, one writer thread at a time per process)."""
        if self._sqlite_writer is None:
            with self.engine.connect() as connection, connection.begin():
                yield connection
            return
        with self._sqlite_writer, self.engine.connect() as connection:
            connection.execution_options(sqlite_immediate=True)
            with connection.begin():
                yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

    # -- meta -------------------------------------------------------------------------------
    def corpus_version(self, connection: Connection | None = None) -> int:
        if connection is None:
            with self.read() as conn:
                return self.corpus_version(conn)
        value = connection.execute(select(MetaRow.value).where(MetaRow.key == "corpus_version")).scalar()
        return int(value or 0)

    def _bump_corpus_version(self, connection: Connection) -> int:
        version = self.corpus_version(connection) + 1
        updated = connection.execute(
            update(MetaRow).where(MetaRow.key == "corpus_version").values(value=str(version))
        ).rowcount
        if not updated:
            connection.execute(insert(MetaRow).values(key="corpus_version", value=str(version)))
        return version

    # -- users ------------------------------------------------------------------------------
    def sync_users(self, emails: Iterable[str]) -> dict[str, int]:
        """Make sure every configured email has a row; returns email (lower-case) -> id."""
        wanted = {email.lower() for email in emails}
        with self.read() as conn:  # usually all there: no write lock taken then
            existing = {row.email: row.id for row in conn.execute(select(UserRow.email, UserRow.id))}
        if wanted - set(existing):
            with self.write() as conn:
                existing = {row.email: row.id for row in conn.execute(select(UserRow.email, UserRow.id))}
                missing = sorted(wanted - set(existing))
                if missing:
                    now = utcnow()
                    conn.execute(insert(UserRow), [{"email": e, "created_at": now} for e in missing])
                    existing = {row.email: row.id for row in conn.execute(select(UserRow.email, UserRow.id))}
        return {email: existing[email] for email in wanted}

    def user_id(self, email: str) -> int:
        return self.sync_users([email])[email.lower()]

    def user_ids(self) -> set[int]:
        with self.read() as conn:
            return set(conn.execute(select(UserRow.id)).scalars())

    def user_rows(self) -> list[Any]:
        with self.read() as conn:
            return list(conn.execute(select(UserRow).order_by(UserRow.email)))

    # -- ingest -----------------------------------------------------------------------------
    def has_batch(self, content_hash: str) -> bool:
        with self.read() as conn:
            return conn.execute(select(BatchRow.id).where(BatchRow.content_hash == content_hash)).first() is not None

    def ingest_batch(self, parsed: ParsedBatch, source: str, content_hash: str, run_id: str) -> IngestResult:
        """Store a whole batch or nothing: papers matched or added, then the ordered entries."""
        with self.write() as conn:
            if conn.execute(select(BatchRow.id).where(BatchRow.content_hash == content_hash)).first():
                return IngestResult(None, len(parsed.entries), 0, len(parsed.entries), skipped=True)
            paper_ids, new_rows, changed = _resolve(conn, parsed.entries)
            now = utcnow()
            for chunk in chunks(new_rows):
                conn.execute(insert(PaperRow), [dict(row, created_at=now) for row in chunk])
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
            paper_ids, new_rows, changed = _resolve(conn, entries)
            now = utcnow()
            for chunk in chunks(new_rows):
                conn.execute(insert(PaperRow), [dict(row, created_at=now) for row in chunk])
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
        usual form (``arXiv:1706.03762v5``, an arxiv.org URL, the 10.48550 DOI)."""
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
                by_arxiv.update(conn.execute(select(PaperRow.arxiv_id, PaperRow.id).where(PaperRow.arxiv_id.in_(chunk))).all())
                for alias, pid in conn.execute(select(PaperAliasRow.alias, PaperAliasRow.paper_id)
                                               .where(PaperAliasRow.alias.in_(chunk))):
                    by_arxiv.setdefault(alias, pid)
        for ref, arxiv in arxivs.items():
            if ref not in found and arxiv in by_arxiv:
                found[ref] = by_arxiv[arxiv]
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
                for row in conn.execute(select(PaperRow).where(PaperRow.id.in_(chunk))):
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
        stmt = select(PaperRow.id, PaperRow.title)
        with self.read() as conn:
            if ids is None:
                return {r.id: r.title for r in conn.execute(stmt)}
            found: dict[str, str] = {}
            for chunk in chunks(list(dict.fromkeys(ids))):
                found.update((r.id, r.title) for r in conn.execute(stmt.where(PaperRow.id.in_(chunk))))
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
                   PaperRow.arxiv_id, PaperRow.published)
        with self.read() as conn:
            rows = conn.execute(
                select(*columns).join(BatchEntryRow, BatchEntryRow.paper_id == PaperRow.id)
                .where(BatchEntryRow.batch_id.in_(list(batch_ids)))
                .order_by(BatchEntryRow.batch_id, BatchEntryRow.position)
            ).all()
        papers: dict[str, Paper] = {}
        for paper_id, title, abstract, authors, url, paper_arxiv, published in rows:
            if paper_id not in papers:  # first position wins
                papers[paper_id] = Paper(id=paper_id, title=title, abstract=abstract,
                                         authors=tuple(json.loads(authors) or ()) if authors else (),
                                         url=url or "", arxiv_id=paper_arxiv or "", published=published or "")
        return list(papers.values())

    def batch_entries(self, batch_ids: Sequence[int]) -> list[str]:
        """Paper ids of these batches in source order, each paper once (first position wins)."""
        with self.read() as conn:
            rows = conn.execute(
                select(BatchEntryRow.paper_id).where(BatchEntryRow.batch_id.in_(list(batch_ids)))
                .order_by(BatchEntryRow.batch_id, BatchEntryRow.position)
            ).scalars()
            return list(dict.fromkeys(rows))

    # -- stars ------------------------------------------------------------------------------
    def star(self, user_id: int, paper_ids: Sequence[str], origin: str = "cli") -> int:
        """Star papers (already-starred ones are left alone); returns how many were new."""
        with self.write() as conn:
            return self._star(conn, user_id, paper_ids, origin)

    def _star(self, conn: Connection, user_id: int, paper_ids: Sequence[str], origin: str) -> int:
        have = set(conn.execute(select(StarRow.paper_id).where(StarRow.user_id == user_id)).scalars())
        fresh = [pid for pid in dict.fromkeys(paper_ids) if pid not in have]
        if fresh:
            now = utcnow()
            conn.execute(insert(StarRow), [
                {"user_id": user_id, "paper_id": pid, "origin": origin, "created_at": now} for pid in fresh
            ])
        return len(fresh)

    def star_many(self, pairs: Sequence[tuple[int, str]], origin: str) -> int:
        """Star (user id, paper id) pairs in one transaction; returns how many were new."""
        added = 0
        by_user: dict[int, list[str]] = {}
        for user_id, paper_id in pairs:
            by_user.setdefault(user_id, []).append(paper_id)
        with self.write() as conn:
            for user_id, ids in by_user.items():
                added += self._star(conn, user_id, ids, origin)
        return added

    def unstar(self, user_id: int, paper_ids: Sequence[str]) -> int:
        """Remove these stars (papers named by id, alias or arXiv id); returns how many went."""
        ids = list(set(self.resolve_ids(paper_ids).values()))
        with self.write() as conn:
            return conn.execute(
                delete(StarRow).where(StarRow.user_id == user_id, StarRow.paper_id.in_(ids))
            ).rowcount

    def stars(self, user_id: int) -> list[tuple[Paper, datetime]]:
        with self.read() as conn:
            rows = conn.execute(
                select(PaperRow, StarRow.created_at).join(StarRow, StarRow.paper_id == PaperRow.id)
                .where(StarRow.user_id == user_id).order_by(StarRow.created_at, PaperRow.id)
            ).all()
        return [(_paper(r), r.created_at) for r in rows]

    def starred_ids(self, user_id: int) -> dict[str, datetime]:
        with self.read() as conn:
            rows = conn.execute(select(StarRow.paper_id, StarRow.created_at).where(StarRow.user_id == user_id))
            return {r.paper_id: r.created_at for r in rows}

    # -- model and profiles -----------------------------------------------------------------
    def load_model(self, kind: str, key: str) -> Any | None:
        """The cached model of this kind if it was fit for ``key``: mapped from its file beside
        a SQLite database, else read from its row (see model_files). None when there is none,
        or its file is gone or damaged (the caller fits it again: a model is a cache)."""
        with self.read() as conn:
            row = conn.execute(select(ModelRow.key, ModelRow.created_at).where(ModelRow.kind == kind)).first()
            if row is None or row.key != key:
                return None
            stamp = f"{row.key}|{row.created_at.isoformat()}"
            known = self._models.get(kind) if self._models is not None else None
            if known is not None and known[0] == stamp:
                return known[1]
            files = self._model_files()
            model = files.load(kind, stamp) if files is not None else None
            if model is None:
                payload = conn.execute(select(ModelRow.payload).where(ModelRow.kind == kind)).scalar()
                if not payload:
                    return None
                if files is not None:
                    files.save(kind, stamp, payload)
                try:
                    model = model_files.loads(bytearray(payload))  # a copy the arrays can be written in
                except model_files.DamagedModel as exc:
                    log.warning("ignoring the stored %s model (%s): it is fit again", kind, exc)
                    return None
        if self._models is not None:
            self._models[kind] = (stamp, model)
        self._stamps[kind] = stamp
        return model

    def save_model(self, kind: str, key: str, model: Any) -> None:
        """Beside a SQLite database the model is kept in its file only, when that can be
        written: writing it into the database too (its log, then its pages) took 4 s of a
        100,000-paper ingest. The row then holds the key and time that stamp the file."""
        payload, now = model_files.dumps(model), utcnow()
        stamp = f"{key}|{now.isoformat()}"
        files = self._model_files()
        in_file = files is not None and files.save(kind, stamp, payload)
        with self.write() as conn:
            conn.execute(delete(ModelRow).where(ModelRow.kind == kind))
            conn.execute(insert(ModelRow).values(kind=kind, key=key, payload=b"" if in_file else payload,
                                                 created_at=now))
        if self._models is not None:
            self._models[kind] = (stamp, model)
        self._stamps[kind] = stamp

    def model_stamp(self, kind: str) -> str | None:
        """The stamp (key and time) of the model of this kind this store last loaded or saved:
        what a cache derived from that very model can be keyed by."""
        return self._stamps.get(kind)

    def signal_generations(self, user_ids: Sequence[int]) -> dict[int, int] | None:
        """user id -> how many times their stars and feedback changed (SQLite, where triggers
        count them; users with no change are left out). None on PostgreSQL, which counts none."""
        if self.sqlite_path is None:
            return None
        found: dict[int, int] = {}
        with self.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                found.update(conn.execute(select(SIGNAL_GENERATIONS.c.user_id, SIGNAL_GENERATIONS.c.generation)
                                          .where(SIGNAL_GENERATIONS.c.user_id.in_(chunk))).all())
        return found

    def _model_files(self) -> model_files.ModelFiles | None:
        database = self.sqlite_path
        return model_files.ModelFiles(database.with_name(database.name + "-models")) if database else None

    def interactions(self) -> list[tuple[int, str]]:
        """Every (user id, paper id) star: what all subscribers saved, for collaborative signal."""
        with self.read() as conn:
            return [(r.user_id, r.paper_id) for r in conn.execute(select(StarRow.user_id, StarRow.paper_id))]

    def star_count(self) -> int:
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(StarRow)).scalar_one()

    def signals(self, user_ids: Sequence[int], times: bool = True) -> dict[int, list[Any]]:
        """Stars and feedback clicks of these users, oldest first: user id -> [Signal]. Without
        ``times`` their ``at`` is None (reading and converting the timestamps is most of the cost)."""
        from recommender.profiles import Signal

        found: dict[int, list[Any]] = {}
        wanted = list(user_ids)
        star_at = StarRow.created_at if times else null()
        click_at = FeedbackRow.created_at if times else null()
        with self.read() as conn:
            for chunk in chunks(wanted, 5000):
                stars = conn.execute(select(StarRow.user_id, StarRow.paper_id, star_at)
                                     .where(StarRow.user_id.in_(chunk))
                                     .order_by(StarRow.user_id, StarRow.created_at, StarRow.paper_id))
                for user_id, paper_id, at in stars:
                    found.setdefault(user_id, []).append(Signal(paper_id, "star", at))
                clicks = conn.execute(select(FeedbackRow.user_id, FeedbackRow.paper_id, FeedbackRow.action, click_at)
                                      .where(FeedbackRow.user_id.in_(chunk))
                                      .order_by(FeedbackRow.user_id, FeedbackRow.created_at, FeedbackRow.id))
                for user_id, paper_id, action, at in clicks:
                    found.setdefault(user_id, []).append(Signal(paper_id, action, at))
        return found

    def profile_versions(self, user_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """user id -> (signal version, model version) of the stored profile."""
        found: dict[int, tuple[str, int]] = {}
        with self.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                for row in conn.execute(select(ProfileRow.user_id, ProfileRow.signal_version, ProfileRow.model_version)
                                        .where(ProfileRow.user_id.in_(chunk))):
                    found[row.user_id] = (row.signal_version, row.model_version)
        return found

    def load_profile(self, user_id: int) -> Any:
        with self.read() as conn:
            return conn.execute(select(ProfileRow).where(ProfileRow.user_id == user_id)).first()

    def save_profiles(self, rows: Sequence[tuple[int, int, str, dict[str, float], list[list[object]]]]) -> None:
        """Upsert (user id, model version, signal version, terms, sources) profiles in one transaction."""
        now = utcnow()
        with self.write() as conn:
            ids = [r[0] for r in rows]
            for chunk in chunks(ids, 5000):
                conn.execute(delete(ProfileRow).where(ProfileRow.user_id.in_(chunk)))
            for chunk in chunks(list(rows), 1000):
                conn.execute(insert(ProfileRow), [
                    {"user_id": uid, "model_version": mv, "signal_version": sv, "terms": terms, "sources": sources,
                     "updated_at": now} for uid, mv, sv, terms, sources in chunk])

    def sent_map(self, user_ids: Sequence[int]) -> dict[int, set[str]]:
        """Papers already in a pending or sent digest, per user."""
        found: dict[int, set[str]] = {}
        with self.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                rows = conn.execute(
                    select(DigestRow.user_id, DigestEntryRow.paper_id)
                    .join(DigestRow, DigestRow.id == DigestEntryRow.digest_id)
                    .where(DigestRow.user_id.in_(chunk), DigestRow.status.in_(("pending", "sent"))))
                for row in rows:
                    found.setdefault(row.user_id, set()).add(row.paper_id)
        return found


def _no_automatic_checkpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint = 0")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see begin hook)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _generated_id(entry: ParsedPaper) -> str:
    """The id of a paper known only by its text: a hash of its normalised title, else of its abstract."""
    if title_key(entry.title):
        return title_hash_id(entry.title)
    return title_hash_id(f"abstract: {title_key(entry.abstract) or entry.abstract}")


_FILLABLE = ("arxiv_id", "authors", "url", "abstract", "published")


def _resolve(conn: Connection, entries: Sequence[ParsedPaper]) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Match entries to stored papers (id, then arXiv id, then title) and return the id of
    each entry and the rows of papers to add. Matched papers keep their id and gain the
    fields they lacked (an arXiv id, authors, a URL); the id the entry would have had stays an
    alias of it. Later copies within the batch reuse the first."""
    given = list({e.source_id or e.arxiv_id or _generated_id(e) for e in entries})
    arxivs = list({e.arxiv_id for e in entries if e.arxiv_id})
    entry_keys = [title_key(e.title) if e.title else "" for e in entries]
    keys = list({k for k in entry_keys if k})
    columns = (PaperRow.id, PaperRow.title_key, *(getattr(PaperRow, c) for c in _FILLABLE))
    stored: dict[str, Any] = {}
    for column, values in ((PaperRow.id, given), (PaperRow.arxiv_id, arxivs), (PaperRow.title_key, keys)):
        for chunk in chunks(values):
            for row in conn.execute(select(*columns).where(column.in_(chunk)).order_by(PaperRow.created_at, PaperRow.id)):
                stored.setdefault(row.id, row)
    by_id = {pid: pid for pid in stored}
    by_arxiv = {row.arxiv_id: pid for pid, row in stored.items() if row.arxiv_id}
    by_key: dict[str, str] = {}
    for pid, row in stored.items():
        by_key.setdefault(row.title_key, pid)
    ids: list[str] = []
    new_rows: list[dict[str, Any]] = []
    fills: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    taken = set(by_id)
    created: set[str] = set()
    for entry, key in zip(entries, entry_keys, strict=True):
        pid = (by_id.get(entry.source_id) if entry.source_id else None) \
            or (by_arxiv.get(entry.arxiv_id) if entry.arxiv_id else None) \
            or (by_key.get(key) if key else None) \
            or (by_id.get(_generated_id(entry)) if not (entry.source_id or entry.arxiv_id) else None)
        if pid is None:
            pid = entry.source_id or entry.arxiv_id or _generated_id(entry)
            if pid in taken and pid not in created:
                pid = title_hash_id(f"{pid} {entry.title} {entry.abstract}")
        if pid not in created and pid not in stored:
            taken.add(pid)
            created.add(pid)
            new_rows.append({
                "id": pid, "arxiv_id": entry.arxiv_id or None, "title_key": key, "title": entry.title,
                "abstract": entry.abstract, "authors": list(entry.authors), "url": entry.url,
                "published": entry.published[:64],
            })
        elif pid in stored:
            _fill_in(stored[pid], entry, fills.setdefault(pid, {}), by_arxiv)
        if entry.source_id:
            by_id.setdefault(entry.source_id, pid)
        if entry.arxiv_id:
            by_arxiv.setdefault(entry.arxiv_id, pid)
        if key:
            by_key.setdefault(key, pid)
        natural = entry.source_id or entry.arxiv_id or _generated_id(entry)
        if natural != pid and natural not in taken:
            aliases.setdefault(natural[:64], pid)
        ids.append(pid)
    changed = bool(new_rows)
    for pid, values in fills.items():
        if values:
            conn.execute(update(PaperRow).where(PaperRow.id == pid).values(**values))
            changed = True
    _add_aliases(conn, aliases, new_rows)
    return ids, new_rows, changed


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
