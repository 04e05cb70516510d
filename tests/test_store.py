"""The store on a real SQLite file, and on PostgreSQL when one is reachable."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from importlib.resources import as_file
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy import text

from recommender import pipeline
from recommender.base.domain import ParsedBatch, ParsedPaper
from recommender.base.errors import SchemaError
from recommender.store import Store, migrate
from recommender.store.outbox import Outbox

from conftest import SEEDS


def test_seed_ingest_counts_and_idempotence(store: Store):
    summary = pipeline.ingest_files(store, SEEDS, batch_date=date(2025, 1, 1))
    assert (summary.entries, summary.new_papers, summary.duplicates) == (434, 374, 60)
    assert len(store.papers()) == 374
    assert [b.entry_count for b in store.batches()] == [98, 91, 79, 92, 74]
    again = pipeline.ingest_files(store, SEEDS, batch_date=date(2025, 1, 1))
    assert again.skipped_files == 5 and again.entries == 0
    assert len(store.papers()) == 374 and len(store.batches()) == 5


def test_latest_run_is_the_last_ingest_command(store: Store):
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 1, 1))
    pipeline.ingest_files(store, SEEDS[2:], batch_date=date(2025, 1, 1))
    latest = store.latest_run_batch_ids()
    assert len(latest) == 3
    assert len(store.batch_entries(latest)) == len(set(store.batch_entries(latest)))
    # The candidates of a ranking run, read in one query, are these entries' papers in order.
    candidates = store.batch_papers(latest)
    assert candidates == store.papers(store.batch_entries(latest))
    assert len(candidates) > 200


def _batch(*papers: ParsedPaper) -> ParsedBatch:
    return ParsedBatch(format="jsonl", entries=tuple(papers))


def test_same_paper_from_two_sources_is_one_row_keeping_its_first_id(store: Store):
    store.ingest_batch(_batch(ParsedPaper(title="Attention Is All You Need", abstract="a")), "page", "h1", "r1")
    first = store.papers()[0]
    assert first.id.startswith("t")
    # Same title, other punctuation and case, now with an arXiv id and authors.
    store.ingest_batch(_batch(ParsedPaper(title="attention is all you need.", abstract="longer",
                                          arxiv_id="1706.03762", authors=("A. Vaswani",))), "jsonl", "h2", "r2")
    # Matched by arXiv id from a third source, with another title.
    store.ingest_batch(_batch(ParsedPaper(title="Transformers", abstract="", arxiv_id="1706.03762")),
                       "feed", "h3", "r3")
    papers = store.papers()
    assert len(papers) == 1 and papers[0].id == first.id
    assert store.batch_entries(store.all_batch_ids()) == [first.id]
    assert store.batch_papers(store.all_batch_ids()) == papers


def test_a_copy_with_its_own_id_in_the_same_batch_becomes_an_alias_of_the_first(store: Store):
    """The second entry matches the first (new in this batch) by title; its id is recorded as an
    alias only once the paper it names is stored."""
    store.ingest_batch(_batch(ParsedPaper(title="Zero", abstract=""), ParsedPaper(title="Zero", abstract="",
                                                                                  source_id="0")), "jsonl", "h", "r")
    (paper,) = store.papers()
    assert store.resolve_ids(["0"]) == {"0": paper.id}
    assert store.paper("0") == paper


def test_titles_are_stored_on_one_line(store: Store):
    data = json.dumps({"title": "Multi\r\nline\ttitle\x07here", "abstract": "x"}).encode()
    from recommender.sources import parse

    store.ingest_batch(parse(data, "x.jsonl"), "x", "h", "r")
    assert store.papers()[0].title == "Multi line title here"


def test_a_failing_batch_stores_nothing(store: Store, tmp_path: Path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"title": "fine paper", "abstract": "x"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok", "abstract": "x"}\n{"title": broken\n')
    with pytest.raises(Exception) as info:
        pipeline.ingest_files(store, [good, bad])
    assert "bad.jsonl:2" in str(info.value)
    assert store.papers() == [] and store.batches() == []


def test_stars_and_users(store: Store):
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 1, 1))
    ids = [p.id for p in store.papers()[:3]]
    user = store.user_id("Ada@Example.org")
    assert store.user_id("ada@example.org") == user
    assert store.star(user, ids[:2]) == 2
    assert store.star(user, ids) == 1
    assert list(store.starred_ids(user)) and set(store.starred_ids(user)) == set(ids)
    assert store.unstar(user, [ids[0]]) == 1
    assert set(store.starred_ids(user)) == set(ids[1:])


def test_search_is_parameterised(store: Store):
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 1, 1))
    assert store.search_papers("optimal transport")
    assert store.search_papers("'; DROP TABLE papers; --") == []
    assert store.search_papers("100%") == [] or all("100%" in p.abstract for p in store.search_papers("100%"))
    assert len(store.papers()) == 98


def test_stored_digest_messages_move_to_their_own_table_and_back(database_url: str):
    """0005 moves each digest's message out of its row (delivery updates the row twice, and
    SQLite rewrites a whole row on update); the digest and its message survive both ways."""
    from alembic import command

    from recommender.base.resources import migrations_dir
    from recommender.store import migrate
    from recommender.store.outbox import Outbox

    store = Store.open(database_url)
    migrate.upgrade(store.engine, target="0004")
    message = b"Subject: kept\r\n\r\n" + bytes(range(256)) * 300
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.org', '2026-01-01')"))
        conn.execute(text(
            "INSERT INTO digests (id, user_id, status, message_id, subject, message, last_batch_id, attempts, "
            "last_error, server_reply, lease_owner, created_at) VALUES (7, 1, 'pending', '<m@x>', 's', :m, 1, 0, "
            "'', '', '', '2026-01-01')"), {"m": message})
        conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                          "VALUES ('p1', 'a paper', 'A paper', 'x', '[]', '', '', '2026-01-01')"))
        conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why) "
                          "VALUES (7, 0, 'p1', 0.5, 'because')"))
    assert store.upgrade_schema() == ("0004", migrate.HEAD_REVISION)
    with store.engine.connect() as conn:  # not deleted through ON DELETE CASCADE by a copy of the table
        assert conn.execute(text("SELECT why FROM digest_entries WHERE digest_id = 7")).scalar_one() == "because"
    assert Outbox(store).message(7) == message
    claimed = Outbox(store).claim("me", timedelta(minutes=5))
    assert [(c.id, c.email, c.message) for c in claimed] == [(7, "a@example.org", message)]
    with as_file(migrations_dir()) as location, store.engine.begin() as conn:
        config = migrate._alembic_config(str(location))
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT message FROM digests WHERE id = 7")).scalar_one() == message
    store.close()


def test_papers_written_before_categories_keep_everything_and_gain_one_when_seen_again(database_url: str):
    """0009 adds papers.category to a database written by 0008: every paper keeps its fields,
    stars, digest entries and clicks; a source naming the category later fills it in."""
    from recommender.store import migrate
    from recommender.store.feedback import FeedbackLog

    store = Store.open(database_url)
    migrate.upgrade(store.engine, target="0008")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.org', '2026-01-01')"))
        conn.execute(text("INSERT INTO papers (id, arxiv_id, title_key, title, abstract, authors, url, published, "
                          "created_at) VALUES ('2508.13171', '2508.13171', 'cognitive workspace', 'Cognitive Workspace', "
                          "'Memory for LLMs.', '[\"Tao An\"]', 'https://arxiv.org/abs/2508.13171', '2025-08-20', "
                          "'2026-01-01')"))
        conn.execute(text("INSERT INTO stars (user_id, paper_id, origin, created_at) VALUES (1, '2508.13171', 'cli', '2026-01-02')"))
        conn.execute(text("INSERT INTO feedback (user_id, paper_id, action, digest_id, token_id, client, created_at) "
                          "VALUES (1, '2508.13171', 'more', NULL, 't1', 'c', '2026-01-03')"))
    assert store.upgrade_schema() == ("0008", migrate.HEAD_REVISION)
    paper = store.paper("2508.13171")
    assert (paper.title, paper.abstract, paper.authors, paper.url, paper.published, paper.category) == (
        "Cognitive Workspace", "Memory for LLMs.", ("Tao An",), "https://arxiv.org/abs/2508.13171", "2025-08-20", "")
    assert list(store.starred_ids(1)) == ["2508.13171"]
    assert FeedbackLog(store).clicked(1, ["2508.13171"]) == {"2508.13171": frozenset({"more"})}
    store.add_papers([ParsedPaper(title="Cognitive Workspace", abstract="", arxiv_id="2508.13171", category="cs.AI")])
    assert store.paper("2508.13171").category == "cs.AI"
    store.close()


def test_init_is_harmless_twice_and_newer_schemas_are_refused(database_url: str):
    from recommender.store import migrate

    store = Store.open(database_url)
    before, after = store.upgrade_schema()
    assert before is None and after == migrate.HEAD_REVISION
    assert store.upgrade_schema() == (migrate.HEAD_REVISION, migrate.HEAD_REVISION)
    store.check_schema()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="newer than this version"):
        store.check_schema()
    with pytest.raises(SchemaError, match="newer than this version"):
        store.upgrade_schema()
    store.close()


def test_uninitialised_database_is_refused(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(SchemaError, match="run `recommender init`"):
        store.check_schema()


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'wal.sqlite'}")
    store.upgrade_schema()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_writers_of_two_processes_queue_on_the_writer_lock(tmp_path: Path):
    """A second process waits for the first one's write to end (no sleeping busy handler)."""
    import subprocess
    import sys

    from recommender.store.store import WriterLock

    database, marker = tmp_path / "shared.sqlite", tmp_path / "releasing"
    database.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom recommender.store.store import WriterLock\n"
         "lock = WriterLock(Path(sys.argv[1]))\nlock.__enter__()\nprint('held', flush=True)\ntime.sleep(1)\n"
         "Path(sys.argv[2]).touch()\nlock.__exit__(None)\n", str(database), str(marker)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lock = WriterLock(database)
    with lock, lock:  # reentrant within a thread
        assert marker.exists()  # we got the lock only once the other process let go
    assert holder.wait(timeout=30) == 0


def test_the_schema_head_constant_is_the_newest_migration():
    """Commands skip Alembic when the stored revision equals HEAD_REVISION: a new migration
    must move the constant too, or no database would ever be found current."""
    from importlib.resources import as_file

    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from recommender.base.resources import migrations_dir
    from recommender.store import migrate

    with as_file(migrations_dir()) as location:
        config = AlembicConfig()
        config.set_main_option("script_location", str(location))
        assert ScriptDirectory.from_config(config).get_current_head() == migrate.HEAD_REVISION


def _model_arrays(seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {"matrix": sp.random(50, 40, density=0.2, random_state=seed, format="csr"),
            "factors": rng.random((50, 8)).astype(np.float32), "ids": [f"p{i}" for i in range(50)]}


def _base_object(array: np.ndarray) -> object:
    while isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base
    base = array.base
    return base.obj if isinstance(base, memoryview) else base


def test_a_saved_model_comes_back_equal_and_writable_on_every_backend(store: Store):
    model = _model_arrays(1)
    store.save_model("tfidf", "k1", model)
    for _ in range(2):  # the second time from the mapped copy, on SQLite
        loaded = store.load_model("tfidf", "k1")
        assert loaded["ids"] == model["ids"]
        assert (loaded["matrix"] != model["matrix"]).nnz == 0
        np.testing.assert_array_equal(loaded["factors"], model["factors"])
        loaded["factors"][0, 0] = 42.0  # writable, and the write stays in this copy
    assert store.load_model("tfidf", "k1")["factors"][0, 0] == model["factors"][0, 0]
    assert store.load_model("tfidf", "other key") is None
    assert store.load_model("collab", "k1") is None


def test_models_are_mapped_from_a_file_beside_the_sqlite_database(tmp_path: Path):
    import mmap

    store = Store.open(f"sqlite:///{tmp_path / 'a.sqlite'}")
    store.upgrade_schema()
    store.save_model("collab", "k", _model_arrays(2))
    assert (tmp_path / "a.sqlite-models" / "collab.model").is_file()
    loaded = store.load_model("collab", "k")
    assert isinstance(_base_object(loaded["factors"]), mmap.mmap)
    assert isinstance(_base_object(loaded["matrix"].data), mmap.mmap)
    assert loaded["factors"].ctypes.data % 64 == 0  # arrays start aligned in the file
    store.close()


def test_a_copy_left_by_another_database_at_the_same_path_is_not_used(tmp_path: Path):
    import shutil

    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    first = Store.open(url)
    first.upgrade_schema()
    first.save_model("tfidf", "same key", _model_arrays(3))
    first.close()
    shutil.move(tmp_path / "a.sqlite-models", tmp_path / "old-models")
    (tmp_path / "a.sqlite").unlink()
    second = Store.open(url)
    second.upgrade_schema()
    second.save_model("tfidf", "same key", _model_arrays(4))
    shutil.rmtree(tmp_path / "a.sqlite-models")
    shutil.move(tmp_path / "old-models", tmp_path / "a.sqlite-models")  # the first database's file
    assert second.load_model("tfidf", "same key") is None  # not the first database's model: fit again
    second.save_model("tfidf", "same key", _model_arrays(4))
    np.testing.assert_array_equal(second.load_model("tfidf", "same key")["factors"], _model_arrays(4)["factors"])
    assert isinstance(_base_object(second.load_model("tfidf", "same key")["factors"]), __import__("mmap").mmap)
    second.close()


class _Planted:
    """A pickle that runs a command when loaded: what write access to the database could plant."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_the_model_cache_never_runs(store: Store, tmp_path: Path):
    import pickle
    from datetime import UTC, datetime

    from sqlalchemy import insert, update

    from recommender.store.schema import ModelRow

    marker = tmp_path / "pwned"
    with store.write() as conn:
        conn.execute(insert(ModelRow).values(kind="tfidf", key="old", payload=pickle.dumps(_Planted(marker)),
                                             created_at=datetime.now(UTC)))
    assert store.load_model("tfidf", "old") is None  # damaged: fit again
    assert not marker.exists()
    # A planted model file beside a SQLite database, with the row's stamp: the same.
    store.save_model("tfidf", "new", _model_arrays(5))
    files = store._model_files()
    if files is None:  # PostgreSQL keeps models in their rows only
        return
    stamp = store.model_stamp("tfidf")
    path = files._path("tfidf")
    path.write_bytes(stamp.encode().ljust(256, b"\0") + pickle.dumps(_Planted(marker)))
    with store.write() as conn:
        conn.execute(update(ModelRow).values(payload=b""))
    fresh = Store.open(str(store.engine.url))
    assert fresh.load_model("tfidf", "new") is None and not marker.exists()
    fresh.close()


def test_models_round_trip_as_arrays_and_json_only(store: Store):
    store.save_model("tfidf", "k", _model_arrays(7))
    fresh = Store.open(str(store.engine.url))
    loaded = fresh.load_model("tfidf", "k")
    expected = _model_arrays(7)
    assert loaded["ids"] == expected["ids"]
    np.testing.assert_array_equal(loaded["factors"], expected["factors"])
    np.testing.assert_array_equal(loaded["matrix"].toarray(), expected["matrix"].toarray())
    fresh.close()


def test_no_module_of_the_package_can_unpickle():
    import ast

    import recommender

    forbidden = {"pickle", "cPickle", "joblib", "cloudpickle", "dill", "shelve", "marshal"}
    for source in Path(recommender.__file__).parent.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & forbidden, source
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in forbidden, source
            elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, source


def test_signals_read_without_times_come_in_the_same_order(store: Store):
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 1, 1))
    ids = [p.id for p in store.papers()][:6]
    users = store.sync_users(["a@example.org", "b@example.org"])
    store.star(users["a@example.org"], ids[:4])
    store.star(users["b@example.org"], ids[3:6])
    timed, untimed = store.signals(list(users.values())), store.signals(list(users.values()), times=False)
    assert {u: [(s.paper_id, s.kind) for s in signals] for u, signals in timed.items()} == \
        {u: [(s.paper_id, s.kind) for s in signals] for u, signals in untimed.items()}
    assert all(s.at is not None for signals in timed.values() for s in signals)
    assert all(s.at is None for signals in untimed.values() for s in signals)
    assert len(timed[users["a@example.org"]]) == 4


def test_a_damaged_model_file_is_never_used(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'a.sqlite'}")
    store.upgrade_schema()
    store.save_model("tfidf", "k", _model_arrays(6))
    copy = tmp_path / "a.sqlite-models" / "tfidf.model"
    data = bytearray(copy.read_bytes())
    data[300:340] = b"\xff" * 40  # inside the pickle
    copy.write_bytes(bytes(data))
    assert store.load_model("tfidf", "k") is None  # the caller fits it again
    store.close()


def test_beside_sqlite_a_model_is_kept_in_its_file_and_in_the_row_only_when_the_file_cannot_be(tmp_path: Path):
    """Writing a 250 MB model into SQLite's log and then its pages doubled a large ingest's
    writes; the row keeps only the key and time that stamp the file."""
    from sqlalchemy import select

    from recommender.store.schema import ModelRow

    store = Store.open(f"sqlite:///{tmp_path / 'a.sqlite'}")
    store.upgrade_schema()
    store.save_model("tfidf", "k", _model_arrays(7))
    with store.read() as conn:
        assert conn.execute(select(ModelRow.payload).where(ModelRow.kind == "tfidf")).scalar() == b""
    np.testing.assert_array_equal(store.load_model("tfidf", "k")["factors"], _model_arrays(7)["factors"])
    store.close()

    blocked = Store.open(f"sqlite:///{tmp_path / 'b.sqlite'}")
    blocked.upgrade_schema()
    (tmp_path / "b.sqlite-models").write_text("a file where the folder would be")
    blocked.save_model("tfidf", "k", _model_arrays(8))
    with blocked.read() as conn:
        assert conn.execute(select(ModelRow.payload).where(ModelRow.kind == "tfidf")).scalar()
    np.testing.assert_array_equal(blocked.load_model("tfidf", "k")["factors"], _model_arrays(8)["factors"])
    blocked.close()

def test_stored_digest_entries_get_a_match_from_their_place_in_their_digest(database_url: str):
    """0012 keeps each entry's match; entries stored before get their place within their own
    digest (nothing else is known of their candidates), and nothing else changes."""
    store = Store.open(database_url)
    migrate.upgrade(store.engine, target="0008")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.org', '2026-01-01')"))
        for digest_id in (7, 8):
            conn.execute(text(
                "INSERT INTO digests (id, user_id, status, message_id, subject, last_batch_id, attempts, last_error, "
                "server_reply, lease_owner, created_at) VALUES (:d, 1, 'sent', :m, 's', 1, 1, '', '', '', '2026-01-01')"),
                {"d": digest_id, "m": f"<m{digest_id}@x>"})
        for n in range(5):
            conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                              "VALUES (:p, :key, :title, 'x', '[]', '', '', '2026-01-01')"),
                         {"p": f"p{n}", "key": f"paper {n}", "title": f"Paper {n}"})
        for position, (paper, score) in enumerate([("p0", -0.05), ("p1", -0.08), ("p2", -0.08), ("p3", -0.2)]):
            conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why) "
                              "VALUES (7, :n, :p, :s, 'because')"), {"n": position, "p": paper, "s": score})
        conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why) "
                          "VALUES (8, 0, 'p4', 0.3, 'alone')"))
    assert store.upgrade_schema() == ("0008", migrate.HEAD_REVISION)
    assert [(e[1], e[2], e[3], e[4]) for e in Outbox(store).entries(7)] == [
        ("p0", -0.05, "because", 100), ("p1", -0.08, "because", 33), ("p2", -0.08, "because", 33),
        ("p3", -0.2, "because", 0)]
    assert [(e[1], e[4]) for e in Outbox(store).entries(8)] == [("p4", 100)]
    store.close()
