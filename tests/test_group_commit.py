"""Group commit: concurrent writes share transactions, each caller gets its own result, and
one failing write fails only its own caller."""

import sqlite3
import threading

import pytest

from recommender.store.group_commit import GroupCommit


def test_concurrent_writes_share_transactions_and_each_caller_gets_its_own_result(tmp_path):
    path = tmp_path / "group.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    batch_sizes = []
    release = threading.Event()

    def write_batch(items):
        release.wait(5)  # hold the first transaction so the others queue up behind it
        batch_sizes.append(len(items))
        with sqlite3.connect(path) as conn:
            return [conn.execute("INSERT INTO t (n) VALUES (?)", (n,)).lastrowid * 10 for n in items]

    group = GroupCommit(write_batch)
    futures = [group.enqueue(n) for n in range(1, 201)]
    release.set()
    assert [f.result(timeout=10) for f in futures] == [n * 10 for n in range(1, 201)]
    group.close()
    assert sum(batch_sizes) == 200
    assert len(batch_sizes) < 20  # grouped, not one transaction per write
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0] == 200


def test_a_failing_write_fails_only_its_caller(tmp_path):
    path = tmp_path / "group.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    release = threading.Event()

    def write_batch(items):
        release.wait(5)
        with sqlite3.connect(path) as conn:  # one transaction: a duplicate key rolls back the whole group
            return [conn.execute("INSERT INTO t (n) VALUES (?)", (n,)).lastrowid for n in items]

    group = GroupCommit(write_batch)
    futures = [group.enqueue(n) for n in (1, 2, 2, 3)]
    release.set()
    assert futures[0].result(timeout=10) == 1
    assert futures[1].result(timeout=10) == 2
    with pytest.raises(sqlite3.IntegrityError):
        futures[2].result(timeout=10)
    assert futures[3].result(timeout=10) == 3
    group.close()
    assert [r[0] for r in sqlite3.connect(path).execute("SELECT n FROM t ORDER BY n")] == [1, 2, 3]
