"""Work that must not grow per reader: the daemon's tick enqueues every due reader with a fixed
number of statements, a shard of owed readers is claimed under a lease (a dead claimer's
shard is claimed again, a live one's is not), a run's claims name its readers by a subquery
instead of a list of ids, and a database written by the previous schema keeps its schedules
(SQLite and PostgreSQL)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text

from recommender.app.daemon import Daemon
from recommender.base.config import load_config
from recommender.store import Store
from recommender.store.outbox import DigestToCreate, NewDigest, Outbox
from recommender.store.run_readers import RunReaders
from recommender.store.schedule import NewSchedule, ReaderSchedule

from conftest import smtp_section, write_config
from smtp_server import SmtpServer

ZONES = ("UTC", "Africa/Abidjan", "America/New_York")  # two rules due at once, one later


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, int]]]:
    """(SQL, parameters in it) of every statement the store runs meanwhile (an executemany counts once)."""
    seen: list[tuple[str, int]] = []

    def record(_conn: object, _cursor: object, sql: str, params: object, _context: object, many: bool) -> None:
        first = params[0] if many and isinstance(params, list | tuple) and params else params
        seen.append((sql, len(first) if isinstance(first, dict | list | tuple) else 0))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _config(tmp_path: Path, database_url: str, readers: int) -> Path:
    listing = "".join(f'[[users]]\nemail = "r{i:04d}@example.org"\ntimezone = "{ZONES[i % 3]}"\nsend_at = "07:00"\n'
                      for i in range(readers))
    tmp_path.mkdir()
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'own.sqlite'}"
    path = write_config(tmp_path, users=listing, database_url=database_url)
    store = Store.open(load_config(path).database.url)
    store.upgrade_schema()
    store.close()
    return path


def _tick_statements(tmp_path: Path, database_url: str, readers: int) -> tuple[int, int, dict[str, datetime]]:
    path = _config(tmp_path, database_url, readers)
    daemon = Daemon(path, clock=Clock(datetime(2025, 6, 2, 3, 0, tzinfo=UTC)))
    daemon.schedule_jobs()
    daemon.clock = Clock(datetime(2025, 6, 2, 7, 0, 30, tzinfo=UTC))  # UTC and Abidjan are due
    with statements(daemon.api.store) as seen:
        enqueued = daemon.tick()
    runs = daemon.next_runs()
    daemon.stop()
    return enqueued, len(seen), runs


def test_a_tick_enqueues_every_due_reader_with_statements_that_do_not_grow(tmp_path: Path, database_url: str):
    few, few_statements, _ = _tick_statements(tmp_path / "few", database_url, 9)
    if database_url.startswith("postgresql"):
        from conftest import _reset_postgres
        _reset_postgres()
    many, many_statements, runs = _tick_statements(tmp_path / "many", database_url, 300)
    assert (few, many) == (6, 200)
    assert many_statements == few_statements <= 14  # (the pruning of old messages and its mark included)
    assert runs["r0000@example.org"] == datetime(2025, 6, 3, 7, 0, tzinfo=UTC)  # moved on to tomorrow
    assert runs["r0001@example.org"] == datetime(2025, 6, 3, 7, 0, tzinfo=UTC)
    assert runs["r0002@example.org"] == datetime(2025, 6, 2, 11, 0, tzinfo=UTC)  # New York: not yet due


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_large_tick_on_postgresql_refreshes_the_statistics_its_shards_are_planned_by(tmp_path: Path,
                                                                                      database_url: str):
    from recommender.store.schedule import ANALYZE_FROM, RUN_TABLES

    enqueued, _, _ = _tick_statements(tmp_path / "install", database_url, ANALYZE_FROM * 3 // 2)
    assert enqueued == ANALYZE_FROM
    store = Store.open(database_url)
    with store.read() as conn:  # (-1: never analyzed; ANALYZE writes the catalog in its transaction)
        tuples = dict(conn.execute(text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"),
                                   {"names": list(RUN_TABLES)}).all())
    store.close()
    assert set(tuples) == set(RUN_TABLES) and tuples["due_readers"] == ANALYZE_FROM
    assert all(count >= 0 for count in tuples.values())


def test_looking_up_one_reader_reads_only_that_reader(store: Store):
    store.upgrade_schema()
    store.sync_users(f"r{i}@example.org" for i in range(50))
    with statements(store) as seen:
        user_id = store.user_id("R7@example.org")
    assert user_id == store.sync_users(["r7@example.org"])["r7@example.org"]
    assert [params for sql, params in seen if "FROM users" in sql] == [1]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_claimers_shard_is_claimed_again_and_a_live_ones_is_not(store: Store):
    store.upgrade_schema()
    ids = store.sync_users(f"r{i}@example.org" for i in range(6))
    schedule = ReaderSchedule(store)
    now = datetime(2025, 6, 2, 7, 0, tzinfo=UTC)
    schedule.save([NewSchedule(uid, "daily at 07:00:00 UTC", now, now - timedelta(days=1)) for uid in ids.values()],
                  lambda _uid: False)
    schedule.run_now(sorted(ids.values()), now, {})
    dead = f"{socket.gethostname()}:{_dead_pid()}:00000000"
    assert len(schedule.claim(dead, timedelta(minutes=30), 4, now)) == 4
    alive = f"{socket.gethostname()}:1:11111111"  # pid 1 always runs: its lease holds until it expires
    assert len(schedule.claim(alive, timedelta(minutes=30), 10, now)) == 6  # the dead one's four and the free two
    assert schedule.claim("another:2:22222222", timedelta(minutes=30), 10, now) == []
    assert len(schedule.claim("another:2:22222222", timedelta(minutes=30), 10, now + timedelta(minutes=31))) == 6
    assert schedule.finish("another:2:22222222", now) == 6
    assert schedule.owed() == 0
    assert set(schedule.last_runs(list(ids.values())).values()) == {now}


def _pending(store: Store, readers: int, prefix: str = "") -> list[int]:
    ids = sorted(store.sync_users(f"r{prefix}{i}@example.org" for i in range(readers)).values())
    Outbox(store).create_many([DigestToCreate(uid, 1, [], lambda digest_id, uid=uid: NewDigest(
        "s", f"<{digest_id}.{uid}@example.org>", b"Subject: s\r\n\r\nbody")) for uid in ids])
    return ids


def test_a_runs_claim_names_its_readers_by_the_run_not_by_their_ids(store: Store):
    store.upgrade_schema()
    ids = _pending(store, 400)
    counts = []
    for wanted in (ids[:3], ids[:300]):
        with RunReaders(store, wanted) as readers, statements(store) as seen:
            claimed = Outbox(store).claim("me:1:x", timedelta(minutes=5), limit=1000, user_ids=readers)
        assert sorted(digest_id for digest_id, *_ in claimed) == sorted(
            i.id for i in Outbox(store).items() if i.user_id in wanted)
        Outbox(store).release([digest_id for digest_id, *_ in claimed])
        counts.append(max(params for sql, params in seen if "lease_until" in sql and "ORDER BY" in sql))
    assert counts[0] == counts[1] <= 8
    with store.read() as conn:  # the run's registration is gone with it
        assert conn.execute(text("SELECT count(*) FROM run_readers")).scalar_one() == 0


def test_a_database_of_the_previous_schema_keeps_its_schedules(database_url: str, tmp_path: Path):
    from recommender.store import migrate

    store = Store.open(database_url)
    migrate.upgrade(store.engine, target="0013")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'ada@example.org', '2025-06-01')"))
        conn.execute(text("INSERT INTO schedule_state (user_id, last_run_at) VALUES (1, '2025-06-01 12:00:00')"))
    assert store.upgrade_schema() == ("0013", migrate.HEAD_REVISION)
    assert ReaderSchedule(store).last_runs([1]) == {1: datetime(2025, 6, 1, 12, 0, tzinfo=UTC)}
    from sqlalchemy import inspect

    pending = [i for i in inspect(store.engine).get_indexes("digests") if i["name"] == "ix_digests_pending"]
    assert [i["column_names"] for i in pending] == [["id"]]
    store.close()
    # A daemon down over Monday's 07:30 BST run, back 20 minutes later, still owes it once.
    path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\ntimezone = "Europe/London"\n'
                                        'send_at = "07:30"\n', database_url=database_url)
    daemon = Daemon(path, clock=Clock(datetime(2025, 6, 2, 6, 50, tzinfo=UTC)))
    daemon.schedule_jobs()
    assert daemon.next_runs() == {"ada@example.org": datetime(2025, 6, 2, 6, 30, tzinfo=UTC)}
    assert daemon.tick() == 1
    daemon.stop()


def test_a_delivery_run_checks_unsubscribes_and_dead_leases_once_not_per_claim(tmp_path: Path, smtp_server: SmtpServer):
    from recommender.pipeline import digests

    path = write_config(tmp_path, users="", extra=smtp_section(smtp_server.port))
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    ids = _pending(store, 30)
    Outbox(store).set_unsubscribed(ids[0], True)
    with statements(store) as seen:
        outcomes = digests.deliver_pending(digests.DigestWork(config, store, lambda: datetime.now(UTC)), claiming=digests.Claiming(batch_size=4))
    assert len(outcomes) == 29 and len(smtp_server.box.messages) == 29  # not the reader who unsubscribed
    claims = [sql for sql, _ in seen if "lease_until" in sql and "ORDER BY" in sql]
    assert len(claims) >= 8
    assert len([sql for sql, _ in seen if "UPDATE digests" in sql and "unsubscribed_at" in sql]) == 1
    assert len([sql for sql, _ in seen if "DISTINCT" in sql and "lease_owner" in sql]) == 1
    assert [i.status for i in Outbox(store).items(user_ids=[ids[0]])] == ["unsubscribed"]
    store.close()


def test_a_workers_turn_sends_at_most_its_share_and_the_next_turn_the_rest(tmp_path: Path, smtp_server: SmtpServer):
    from recommender.pipeline import digests

    path = write_config(tmp_path, users="", extra=smtp_section(smtp_server.port))
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    _pending(store, 11)
    work = digests.DigestWork(config, store, lambda: datetime.now(UTC))
    turns = [len(digests.deliver_pending(work, claiming=digests.Claiming(batch_size=2, most=4))) for _ in range(4)]
    assert turns == [4, 4, 3, 0] and len(smtp_server.box.messages) == 11  # each once
    store.close()


def test_sent_digests_lose_their_message_after_keep_days_and_keep_their_papers(store: Store):
    store.upgrade_schema()
    ids = _pending(store, 4)
    outbox = Outbox(store)
    with store.write() as conn:  # two sent long ago, one sent today, one still pending
        conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                          "VALUES ('p1', 'a', 'A', 'x', '[]', '', '', '2025-01-01')"))
        for digest_id in (1, 2, 3):
            conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why) "
                              "VALUES (:d, 0, 'p1', 0.5, 'because')"), {"d": digest_id})
        conn.execute(text("UPDATE digests SET status = 'sent', created_at = '2025-01-01' WHERE id IN (1, 2)"))
        conn.execute(text("UPDATE digests SET status = 'sent' WHERE id = 3"))
    now = datetime.now(UTC)
    assert outbox.prune(now - timedelta(days=30)) == 2
    assert outbox.prune(now - timedelta(days=30)) == 0  # nothing left to prune below the first kept digest
    with store.read() as conn:
        kept = set(conn.execute(text("SELECT digest_id FROM digest_messages")).scalars())
        reasons = dict(conn.execute(text("SELECT digest_id, why FROM digest_entries")).all())
    assert kept == {3, 4}
    assert reasons == {1: "", 2: "", 3: "because"}
    assert store.sent_map(ids)[ids[0]] == {"p1"}  # the papers stay: never sent twice


def test_keep_days_is_read_and_checked(tmp_path: Path):
    from recommender.base.config import ConfigErrors

    path = write_config(tmp_path, users="", extra="[delivery]\nkeep_days = 7\n")
    assert load_config(path).delivery.keep_days == 7
    path.write_text("[delivery]\nkeep_days = 0\n")
    try:
        load_config(path)
    except ConfigErrors as exc:
        assert "delivery.keep_days" in str(exc)
    else:
        raise AssertionError("keep_days = 0 was accepted")


def test_a_send_time_moved_by_seconds_reschedules(tmp_path: Path):
    user = '[[users]]\nemail = "ada@example.org"\ntimezone = "UTC"\nsend_at = "{}"\n'
    path = write_config(tmp_path, users=user.format("07:00:10"))
    Store.open(load_config(path).database.url).upgrade_schema()
    daemon = Daemon(path, clock=Clock(datetime(2025, 6, 2, 6, 0, tzinfo=UTC)))
    daemon.schedule_jobs()
    assert daemon.next_runs() == {"ada@example.org": datetime(2025, 6, 2, 7, 0, 10, tzinfo=UTC)}
    path.write_text(path.read_text().replace("07:00:10", "07:00:40"))
    daemon.reload()
    assert daemon.next_runs() == {"ada@example.org": datetime(2025, 6, 2, 7, 0, 40, tzinfo=UTC)}
    daemon.stop()


def _blocks_read(store: Store, read: Callable[[], object]) -> int:
    """Shared buffers PostgreSQL touched to answer ``read``'s statements, each explained in a
    transaction set up as the store sets up that read's (the planner settings included)."""
    with statements_with_params(store) as seen:
        read()
    touched = 0
    for sql, params in seen:
        with store.read() as conn:
            store.by_index(conn)
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).scalar_one()
        touched += plan[0]["Plan"]["Shared Hit Blocks"] + plan[0]["Plan"]["Shared Read Blocks"]
    return touched


@contextmanager
def statements_with_params(store: Store) -> Iterator[list[tuple[str, object]]]:
    seen: list[tuple[str, object]] = []

    def record(_conn: object, _cursor: object, sql: str, params: object, _context: object, _many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_shards_reads_of_its_readers_digests_stay_small_when_the_statistics_predate_the_run(store: Store):
    """The statistics a run is planned by are taken before it (at the tick), when the day's
    digests do not exist yet; a shard's look-ups of its readers' digests must still read those
    readers' rows, not every digest (a condition on the status drew the planner to read every
    digest through the status index; a merge join read every digest entry)."""
    from recommender.base.domain import ParsedPaper

    store.upgrade_schema()
    papers, _ = store.add_papers([ParsedPaper(title=f"Paper {i}", abstract="", arxiv_id=f"2501.{i:05d}")
                                  for i in range(10)])
    ids = sorted(store.sync_users(f"r{i}@example.org" for i in range(6000)).values())
    outbox = Outbox(store)

    def digests(readers: list[int]) -> None:
        outbox.create_many([DigestToCreate(uid, 1, [(p, 1.0, "", 1) for p in papers], lambda digest_id, uid=uid:
                                           NewDigest("s", f"<{digest_id}.{uid}@example.org>", b"Subject: s\r\n\r\nb"))
                            for uid in readers])

    digests(ids[:20])  # never analyzed, as on a new install's first day (the tick leaves these tables)
    asked = ids[:10]
    small = [_blocks_read(store, lambda: store.sent_map(asked)), _blocks_read(store, lambda: outbox.last_queued_batches(asked))]
    digests(ids[20:])  # the run writes the rest of the day's digests
    large = [_blocks_read(store, lambda: store.sent_map(asked)), _blocks_read(store, lambda: outbox.last_queued_batches(asked))]
    assert store.sent_map(asked) == {uid: set(papers) for uid in asked}
    assert outbox.last_queued_batches(asked) == {uid: 1 for uid in asked}
    # 300 times as many digests; the same readers' rows
    assert all(after <= 2 * before + 10 for before, after in zip(small, large, strict=True)), (small, large)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_claims_statements_are_planned_for_their_values_whatever_plan_the_server_settles_on(database_url: str):
    """psycopg prepares a statement at its fifth use, and PostgreSQL may then settle on a
    generic plan, made for the table as it was and blind to the values: a claim's generic plan
    cannot use the pending digests' partial index (it walked every digest by id) and its
    update of 16 claimed digests read the whole table. Here the server is told to use generic
    plans wherever it may; a claim's statements are still planned for their values."""
    separator = "&" if "?" in database_url else "?"
    store = Store.open(f"{database_url}{separator}options=-c%20plan_cache_mode%3Dforce_generic_plan")
    store.upgrade_schema()
    outbox = Outbox(store)
    now = datetime.now(UTC)
    for n in range(10):
        _pending(store, 2, f"{n}-")
        assert len(outbox.claim(f"w:{n}", timedelta(minutes=5), 16, now=now, dead=[])) == 2
    with store.read() as conn:
        generic, custom = conn.execute(text(
            "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
            "WHERE statement ~* '^\\s*(SELECT digests.id, users.email|UPDATE digests SET lease_owner)'")).one()
        elsewhere = conn.execute(text("SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements")).scalar()
    store.close()
    assert elsewhere > 0  # (the server's setting held for the other statements)
    assert custom >= 10 and generic == 0, (generic, custom)
