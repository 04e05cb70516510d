"""The database connection: engine, SQLite settings, the writer lock, schema upgrades and the
transactions every other part of the store runs in.

SQLite runs in WAL mode with a busy timeout so the CLI, the daemon and the web
endpoint can share one file; write transactions start with BEGIN IMMEDIATE so two
writers queue on the busy timeout instead of failing on a lock upgrade. The same
code runs on PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import (
    Connection,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout alone orders writers across processes
    fcntl = None  # type: ignore[assignment]

import recommender.store.migrate as migrate
from recommender.base.config import masked_url
from recommender.base.errors import ConfigError, RecommenderError, SchemaError
from recommender.store.schema import (
    MetaRow,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000  # $RECOMMENDER_BUSY_TIMEOUT (seconds) overrides



def busy_timeout_ms() -> int:
    value = os.environ.get("RECOMMENDER_BUSY_TIMEOUT", "")
    try:
        return max(0, int(float(value) * 1000)) if value else SQLITE_BUSY_TIMEOUT_MS
    except ValueError:
        return SQLITE_BUSY_TIMEOUT_MS
_CHUNK = 500


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


def set_meta(conn: Connection, key: str, value: str) -> None:
    """Store one ``meta`` value (updated, else inserted)."""
    if not conn.execute(update(MetaRow).where(MetaRow.key == key).values(value=value)).rowcount:
        conn.execute(insert(MetaRow).values(key=key, value=value))


class Database:
    """One database: connections, transactions, schema and the corpus version."""

    def __init__(self, engine: Engine, keep_models: bool = False):
        self.engine = engine
        self._sqlite_writer = WriterLock(self.sqlite_path) if engine.dialect.name == "sqlite" else None
        # kind -> (stamp, model) when ``keep_models``: the last model loaded or saved, handed out
        # again (the same object, not a copy) while the stored row keeps that stamp. For a store
        # that serves many commands (`recommender warm`); one command loads each model once.
        self._models: dict[str, tuple[str, Any]] | None = {} if keep_models else None
        self._stamps: dict[str, str] = {}

    @classmethod
    def open(cls, url: str, keep_models: bool = False) -> Self:
        try:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": busy_timeout_ms() / 1000})
                _configure_sqlite(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True)
                if engine.dialect.name == "postgresql":
                    _configure_postgresql(engine)
        except (SQLAlchemyError, ImportError) as exc:
            raise ConfigError(f"cannot open database {masked_url(url)}: {exc}{_url_hint(url)}") from None
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
    def for_forked_child(self) -> Iterator[Self]:
        """A store of its own for a process forked from ours: the pooled connections and the
        writer lock it inherited are the parent's (sharing them corrupts both sides' state)."""
        self.engine.dispose(close=False)
        store = type(self).open(self.engine.url.render_as_string(hide_password=False))
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
        SQLite gives its -wal and -shm files the database file's mode. A folder that cannot
        be made or written is one line naming it (SQLite writes its -wal file beside the
        database, so the folder must be writable too)."""
        try:
            if not database.parent.exists():
                database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not database.exists():
                os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
                os.chmod(database, 0o600)  # (the umask may have taken bits away, never added any)
        except OSError as exc:
            raise ConfigError(f"cannot create the database {database}: {exc.strerror or exc} "
                             "(check [database] url: its folder must exist or be creatable, and be writable)") from None
        if not os.access(database.parent, os.W_OK):
            raise ConfigError(f"the folder of the database {database} is not writable: SQLite writes its journal "
                             "beside the database (check [database] url, or the folder's permissions)")

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
            path = self.sqlite_path
            if path is not None and "unable to open" in str(exc.orig):
                raise RecommenderError(f"database error: cannot open {path}: SQLite needs to read it and to write "
                                       f"its journal beside it (check the permissions of {path.parent})") from None
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

    @staticmethod
    def by_index(conn: Connection) -> None:
        """Plan this transaction's reads of a few readers' rows through their indexes, whatever
        the statistics say (PostgreSQL): tables that grow during a run have none or stale ones,
        and a shard's look-up of its readers' digests was planned as a read of every digest
        entry (0.5 -> 1.6 ms of PostgreSQL a digest from 10,000 to 100,000 readers)."""
        Database.planned(conn, "enable_seqscan", "enable_hashjoin")

    @staticmethod
    def planned(conn: Connection, *off: str) -> None:
        """Plan this transaction's statements for their values each time, without the planner's
        methods ``off`` (PostgreSQL; "enable_sort", ...). For their values: the generic plan the
        server settles on after a prepared statement's fifth use is made for the table as it
        was then and cannot use a partial index (a claim walked every digest by id instead of
        the pending ones: 20 ms a claim at 50,000 readers). Per transaction, not for every
        statement: foreign-key checks replanned at each row doubled an insert's cost."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            for method in off:
                if not method.startswith("enable_") or not method.replace("_", "").isalpha():
                    raise ValueError(f"not a planner method: {method!r}")  # (the name goes into the statement)
                conn.execute(text(f"SET LOCAL {method} = off"))

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

def _no_automatic_checkpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint = 0")


def _configure_postgresql(engine: Engine) -> None:
    # Each statement reads or writes a few readers' rows, often of tables that grow during a
    # run (their statistics are stale by design: see ``by_index``): no JIT or parallel workers
    # on misestimates (100 ms compiling a 1 ms read; 5 ms of workers for a 0.1 ms read of one
    # claim's digest entries, at 100,000 readers).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET jit = off")
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.close()
        dbapi_connection.commit()


def _url_hint(url: str) -> str:
    """What a database URL that names no installed driver should have been."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "pg"):
        return " (write postgresql+psycopg://USER@HOST:PORT/DATABASE, and install the postgres extra)"
    if not scheme.startswith(("sqlite", "postgresql")):
        return " (the database is SQLite, sqlite:///PATH, or PostgreSQL, postgresql+psycopg://USER@HOST/DATABASE)"
    return ""


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
