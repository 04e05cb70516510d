"""Fitted models and persisted profiles."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy timeout alone orders writers across processes
    fcntl = None  # type: ignore[assignment]

import recommender.store.model_files as model_files
from recommender.store.database import Database, chunks, utcnow
from recommender.store.schema import (
    SIGNAL_GENERATIONS,
    ModelRow,
    ProfileRow,
    UserRow,
)

log = logging.getLogger(__name__)


class ModelRows(Database):
    """Models (in the database or memory-mapped files beside it) and profiles."""

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
                # Mapped from the file just written when it can be (pages shared, not copied)
                model = files.load(kind, stamp) if files is not None and files.save(kind, stamp, payload) else None
                try:
                    if model is None:
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
        # On PostgreSQL the row keeps the model for every host; the file is this host's mapped copy.
        in_file = files is not None and files.save(kind, stamp, payload) and self.sqlite_path is not None
        with self.write() as conn:
            # One statement, not a delete then an insert: workers that fit the same missing
            # model at once both store it (the second insert failed on the first's key).
            dialect_insert: Any = sqlite_insert
            if conn.dialect.name == "postgresql":  # (imported here: 30 ms of every command's start on SQLite)
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            stored = dialect_insert(ModelRow).values(kind=kind, key=key, payload=b"" if in_file else payload,
                                                     created_at=now)
            conn.execute(stored.on_conflict_do_update(index_elements=[ModelRow.kind], set_={
                "key": stored.excluded.key, "payload": stored.excluded.payload,
                "created_at": stored.excluded.created_at}))
        if self._models is not None:
            self._models[kind] = (stamp, model)
        self._stamps[kind] = stamp

    def model_stamp(self, kind: str) -> str | None:
        """The stamp (key and time) of the model of this kind this store last loaded or saved:
        what a cache derived from that very model can be keyed by."""
        return self._stamps.get(kind)

    def signal_generations(self, user_ids: Sequence[int]) -> dict[int, int] | None:
        """user id -> how many times their stars and feedback changed, for the profiles cached
        beside a SQLite database (users with no change are left out). None on PostgreSQL, which
        caches no profiles (it counts them too: ``signal_counts``)."""
        return None if self.sqlite_path is None else self.signal_counts(user_ids)

    def _model_files(self) -> model_files.ModelFiles | None:
        database = self.sqlite_path
        if database is not None:
            return model_files.ModelFiles(database.with_name(database.name + "-models"))
        if self.engine.dialect.name == "sqlite":
            return None  # in memory
        return model_files.ModelFiles(model_files.host_folder(self.engine.url.render_as_string(hide_password=True)))

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

    def signal_counts(self, user_ids: Sequence[int]) -> dict[int, int]:
        """user id -> their signal generation (0006 on SQLite, 0016 on PostgreSQL; readers whose
        signals never changed are left out): what a stored profile records it was built from."""
        found: dict[int, int] = {}
        with self.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                found.update(conn.execute(select(SIGNAL_GENERATIONS.c.user_id, SIGNAL_GENERATIONS.c.generation)
                                          .where(SIGNAL_GENERATIONS.c.user_id.in_(chunk))).all())
        return found

    def stale_profiles(self, user_ids: Sequence[int]) -> tuple[list[int], dict[int, int]]:
        """Of these readers, those whose stars or clicks changed since their stored profile was
        built (or who have none), and the signal generation of each of them (0: never
        changed). Reads the generations the triggers keep (0006 on SQLite, 0016 on
        PostgreSQL) beside the profiles' own, not the signals."""
        generation = func.coalesce(SIGNAL_GENERATIONS.c.generation, 0)
        stale: list[int] = []
        generations: dict[int, int] = {}
        with self.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                rows = conn.execute(
                    select(UserRow.id, generation)
                    .outerjoin(ProfileRow, ProfileRow.user_id == UserRow.id)
                    .outerjoin(SIGNAL_GENERATIONS, SIGNAL_GENERATIONS.c.user_id == UserRow.id)
                    .where(UserRow.id.in_(chunk),
                           or_(ProfileRow.user_id.is_(None), func.coalesce(ProfileRow.signal_generation, -1) != generation))
                    .order_by(UserRow.id))
                for uid, counted in rows:
                    stale.append(uid)
                    generations[uid] = counted
        return stale, generations

    def save_profiles(self, rows: Sequence[tuple[int, int, str, dict[str, float], list[list[object]]]],
                      generations: Mapping[int, int] | None = None) -> None:
        """Upsert (user id, model version, signal version, terms, sources) profiles in one
        transaction; ``generations``: the signal generation each was built from."""
        generations = generations or {}
        now = utcnow()
        with self.write() as conn:
            ids = [r[0] for r in rows]
            for chunk in chunks(ids, 5000):
                conn.execute(delete(ProfileRow).where(ProfileRow.user_id.in_(chunk)))
            for chunk in chunks(list(rows), 1000):
                conn.execute(insert(ProfileRow), [
                    {"user_id": uid, "model_version": mv, "signal_version": sv, "terms": terms, "sources": sources,
                     "updated_at": now, "signal_generation": generations.get(uid)}
                    for uid, mv, sv, terms, sources in chunk])
