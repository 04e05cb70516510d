"""Per-reader state at scale (SQLite and PostgreSQL): readers' settings kept in the database,
synced from the config in bulk and read by a worker per shard (its config parsed without the
``[[users]]``); whose stars and clicks changed, counted by the database on both (a refit
rebuilds only those readers' profiles, in chunks); models mapped from a file on PostgreSQL
too; and a database of the previous schema upgraded with nothing lost."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, text

from recommender import pipeline
from recommender.base.config import CommunityMode, Config, load_config
from recommender.base.domain import ReaderIds
from recommender.pipeline import digests, stored_models
from recommender.pipeline.reader_directory import ReaderDirectory
from recommender.pipeline.schedules import ReaderSchedules
from recommender.pipeline.shards import ShardBuilder
from recommender.store import Store
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox
from recommender.store.reader_settings import ReaderSettings
from recommender.store.schedule import ReaderSchedule

from conftest import SEEDS, write_config

READERS = """
[[users]]
email = "ada@example.org"
interests = ["graph neural networks"]
max_items = 3

[[users.topics]]
name = "theory"
interests = ['''a multi-line
[smtp]
string''']

[[users]]
email = "bob@example.org"
timezone = "Europe/London"

[[users]]
email = "cy@example.org"
"""


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_worker_parses_no_readers_and_reads_its_shards_readers_from_the_database(
        tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture):
    path = write_config(tmp_path, users=READERS, database_url=database_url, extra='[smtp]\nhost = "mail.example.org"\n')
    config = load_config(path)
    worker_config = load_config(path, readers=False)
    assert worker_config.users == () and worker_config.readers_in_store
    assert worker_config.smtp.host == config.smtp.host == "mail.example.org"  # a header in a string is none
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    ReaderSchedules(config, store).sync(_now())
    ids = store.sync_users(u.email for u in config.users)
    assert ReaderSettings(store).of(sorted(ids.values())) == {ids.of(u.email): u for u in config.users}
    # The config changes (a reader's settings, a reader gone) and is synced again: so are the stored settings.
    path.write_text(path.read_text().replace("max_items = 3", "max_items = 4").replace(
        '[[users]]\nemail = "cy@example.org"\n', ""))
    changed = load_config(path)
    ReaderSchedules(changed, store).sync(_now())
    stored = ReaderSettings(store).of(sorted(ids.values()))
    assert stored == {ids.of(u.email): u for u in changed.users} and stored[ids.of("ada@example.org")].max_items == 4
    ReaderSchedule(store).run_now(sorted(ids.values()), _now(), {})
    caplog.set_level("INFO")
    assert ShardBuilder(worker_config, store, _now, readers=10).build_one() == 2  # cy: no longer configured
    assert "no readers' settings stored" not in caplog.text  # the config file was not read for the readers
    assert ReaderSchedule(store).owed() == 0
    assert sorted(i.user_id for i in Outbox(store).items()) == sorted([ids.of("ada@example.org"),
                                                                      ids.of("bob@example.org")])
    # The sending worker renders each digest with the reader's stored settings (ada's topics
    # make sections), not the defaults: the same bytes as from the config's readers.
    for item in Outbox(store).items():
        assert (digests.message_of(digests.DigestWork(worker_config, store, _now), item.id)
                == digests.message_of(digests.DigestWork(changed, store, _now), item.id))
    store.close()


def test_every_process_finds_a_readers_settings_by_one_rule(tmp_path: Path, database_url: str,
                                                            caplog: pytest.LogCaptureFixture):
    """The config's readers where this process loaded them (the newest), else the stored copy
    (a worker's config has none), else, before any sync, the config file read once."""
    config, store, ids = _installed(tmp_path, database_url)
    worker_config = load_config(config.path, readers=False)
    readers = [(ids.of(u.email), u.email.upper()) for u in config.users]  # emails in any case
    caplog.set_level("INFO")
    assert ReaderDirectory(worker_config, store).of(readers) == {ids.of(u.email): u for u in config.users}
    assert "no readers' settings stored" in caplog.text  # nothing synced yet: the file, read once
    ReaderSchedules(config, store).sync(_now())
    config.path.write_text(config.path.read_text().replace("max_items = 3", "max_items = 5"))  # not synced
    edited = load_config(config.path)
    ada = ids.of("ada@example.org")
    assert ReaderDirectory(edited, store).of(readers)[ada].max_items == 5
    assert ReaderDirectory(worker_config, store).of(readers)[ada].max_items == 3
    assert ReaderDirectory(edited, store).one(ada) == edited.user("ada@example.org")
    assert ReaderDirectory(edited, store).one(10_000) is None  # no such reader
    store.close()


def _installed(tmp_path: Path, database_url: str) -> tuple[Config, Store, ReaderIds]:
    """The three readers' config, its database with one batch of papers, and their ids."""
    config = load_config(write_config(tmp_path, users=READERS, database_url=database_url))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    return config, store, store.sync_users(u.email for u in config.users)


def test_a_worker_ranks_with_the_models_the_last_refit_stored_without_counting_every_star(
        tmp_path: Path, database_url: str):
    config, store, ids = _installed(tmp_path, database_url)
    config = replace(config, ranking=replace(config.ranking, community=CommunityMode.ON))
    papers = [p.id for p in store.batch_papers(store.all_batch_ids())]
    readers = [ids.of(u.email) for u in config.users]
    store.star_many([(uid, papers[n]) for n, uid in enumerate(readers)], "import")
    assert pipeline.load_models(store, config).collab is not None  # the refit: counted, fit, recorded
    fitted = store.model_stamp("collab")
    assert store.star_totals(recorded=True) == (3, 3)
    store.star_many([(uid, papers[3 + 3 * n + k]) for n, uid in enumerate(readers) for k in range(3)], "import")
    worker = Store.open(config.database.url)  # another process: no model loaded yet
    assert pipeline.load_models(worker, config, counted=False).collab is not None
    assert worker.model_stamp("collab") == fitted  # the stored model, not one fit for 12 stars
    assert worker.star_totals(recorded=True) == (3, 3)
    pipeline.load_models(store, config)  # the next refit counts again and fits for 12 stars
    assert store.model_stamp("collab") != fitted and store.star_totals(recorded=True) == (12, 3)
    bob = ids.of("bob@example.org")
    Outbox(store).set_unsubscribed(bob, True)
    assert Outbox(store).unsubscribed(readers) == {bob} and Outbox(store).unsubscribed(readers[:1]) == set()
    worker.close()
    store.close()


def _profile_times(store: Store) -> dict[int, tuple[datetime, int | None]]:
    with store.read() as conn:
        rows = conn.execute(text("SELECT user_id, updated_at, signal_generation FROM profiles"))
        return {uid: (at, generation) for uid, at, generation in rows}


def test_a_refit_rebuilds_only_the_profiles_of_readers_whose_signals_changed(tmp_path: Path, database_url: str):
    config, store, ids = _installed(tmp_path, database_url)
    papers = [p.id for p in store.batch_papers(store.all_batch_ids())][:6]
    store.star_many([(ids.of(u.email), papers[n]) for n, u in enumerate(config.users)], "import")  # one statement
    models = pipeline.load_models(store, config)
    pairs = sorted((ids.of(u.email), u) for u in config.users)
    assert stored_models.rebuild_changed_profiles(store, models, pairs, config.ranking, _now(), chunk=2) == 3
    first = _profile_times(store)
    assert store.stale_profiles([uid for uid, _ in pairs]) == ([], {})
    assert stored_models.rebuild_changed_profiles(store, models, pairs, config.ranking, _now(), chunk=2) == 0
    ada, bob, cy = (ids.of(e) for e in ("ada@example.org", "bob@example.org", "cy@example.org"))
    store.star(bob, [papers[4]])
    FeedbackLog(store).record(cy, papers[5], "more", None, "token-1", "test", _now())
    assert store.stale_profiles([uid for uid, _ in pairs])[0] == [bob, cy]
    assert stored_models.rebuild_changed_profiles(store, models, pairs, config.ranking, _now(), chunk=2) == 2
    second = _profile_times(store)
    assert second[ada] == first[ada]
    assert second[bob][0] > first[bob][0] and second[bob][1] > (first[bob][1] or 0)
    assert second[cy][0] > first[cy][0]
    store.unstar(ada, [papers[0]])
    assert store.stale_profiles([uid for uid, _ in pairs])[0] == [ada]
    store.close()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_on_postgresql_an_ingest_refits_no_profile_of_an_unchanged_reader(tmp_path: Path, database_url: str):
    config, store, ids = _installed(tmp_path, database_url)
    store.star(ids.of("ada@example.org"), [p.id for p in store.batch_papers(store.all_batch_ids())][:2])
    pipeline.refresh(store, config)
    before = _profile_times(store)
    assert len(before) == 3
    pipeline.ingest_files(store, SEEDS[1:2], batch_date=date(2025, 3, 21))
    pipeline.refresh(store, config)  # a new corpus: the models are fit again, the profiles stay
    assert _profile_times(store) == before
    store.close()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_on_postgresql_an_ingest_takes_its_readers_from_the_database_not_the_config_files_readers(
        tmp_path: Path, database_url: str):
    """`ingest` (and `fetch`) on PostgreSQL rebuild the changed readers' profiles with the
    settings `init` stored, as a worker ranks them, without parsing every `[[users]]` table
    (5.7 s and 124 MB for 100,000 readers): a reader added to the file after `init` is not
    the refit's until a sync, and a broken reader table does not stop the ingest."""
    from click.testing import CliRunner

    from recommender.app.cli import cli

    path = write_config(tmp_path, users=READERS, database_url=database_url)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(path), *args])
        assert result.exit_code == 0, result.output
        return result.output

    invoke("init")
    invoke("ingest", "--date", "2025-03-20", str(SEEDS[0]))
    store = Store.open(database_url)
    ids = {email: uid for uid, email in store.emails(range(1, 1000)).items()}
    assert set(ids) == {"ada@example.org", "bob@example.org", "cy@example.org"}
    papers = [p.id for p in store.batch_papers(store.all_batch_ids())]
    store.star(ids["ada@example.org"], papers[:2])
    before = _profile_times(store)
    path.write_text(path.read_text() + '\n[[users]]\nemail = "dee@example.org"\ntimezone = "Nowhere/Never"\n')
    invoke("ingest", "--date", "2025-03-21", str(SEEDS[1]))
    after = _profile_times(store)
    assert set(after) == set(before)  # dee is not the database's reader yet
    assert after[ids["ada@example.org"]][0] > before[ids["ada@example.org"]][0]  # ada starred: rebuilt
    assert after[ids["ada@example.org"]][1] == store.signal_counts([ids["ada@example.org"]])[ids["ada@example.org"]]
    assert after[ids["bob@example.org"]] == before[ids["bob@example.org"]]  # bob: unchanged, kept
    store.close()
    assert runner.invoke(cli, ["--config", str(path), "init"]).exit_code != 0  # the broken table, named by init


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_on_postgresql_models_are_mapped_from_a_file_of_this_host_and_kept_in_the_database(tmp_path: Path,
                                                                                            database_url: str):
    path = write_config(tmp_path, users=READERS, database_url=database_url)
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    fitted = pipeline.load_models(store, config).text
    files = list((tmp_path / "cache" / "recommender" / "models").glob("*/tfidf.model"))
    assert len(files) == 1
    with store.read() as conn:  # the row keeps the model: other hosts read it there
        assert conn.execute(text("SELECT length(payload) FROM model_cache WHERE kind = 'tfidf'")).scalar_one() > 1000
    store.close()

    def loaded() -> object:
        other = Store.open(config.database.url)
        try:
            return pipeline.load_models(other, config).text
        finally:
            other.close()

    mapped = loaded()
    assert mapped.paper_ids == fitted.paper_ids  # type: ignore[attr-defined]
    files[0].unlink()  # gone (a new host): read from the row, and the file written again
    assert loaded().paper_ids == fitted.paper_ids  # type: ignore[attr-defined]
    assert files[0].exists()


def test_a_database_of_the_previous_schema_keeps_its_profiles_and_counts_changes_after(database_url: str):
    from recommender.store import migrate

    store = Store.open(database_url)
    migrate.upgrade(store.engine, target="0014")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'ada@example.org', '2025-06-01')"))
        conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                          "VALUES ('p1', 'a', 'A', 'x', '[]', '', '', '2025-01-01')"))
        conn.execute(text("INSERT INTO stars (user_id, paper_id, origin, created_at) "
                          "VALUES (1, 'p1', 'cli', '2025-06-01')"))
        conn.execute(text("INSERT INTO profiles (user_id, model_version, signal_version, terms, sources, updated_at) "
                          "VALUES (1, 3, 'v', '{\"graph\": 0.5}', '[]', '2025-06-01')"))
    assert store.upgrade_schema() == ("0014", migrate.HEAD_REVISION)
    with store.read() as conn:
        assert conn.execute(text("SELECT terms, signal_generation FROM profiles")).one() in (
            ('{"graph": 0.5}', None), ({"graph": 0.5}, None))
        assert conn.execute(text("SELECT count(*) FROM reader_settings")).scalar_one() == 0
    assert "ix_due_readers_due" in {i["name"] for i in inspect(store.engine).get_indexes("due_readers")}  # 0017
    assert store.stale_profiles([1]) == ([1], {1: store.signal_counts([1]).get(1, 0)})  # built before 0015: rebuilt
    before = store.signal_counts([1]).get(1, 0)
    store.unstar(1, ["p1"])
    assert store.signal_counts([1])[1] == before + 1
    store.close()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_workers_storing_the_same_missing_model_at_once_both_succeed(store: Store, database_url: str):
    """Workers started together each fit a model none had stored; the one that stores it
    second waits for the first and replaces its row (it failed on the first one's key)."""
    import threading

    import psycopg

    other = psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"))
    other.execute("INSERT INTO model_cache (kind, key, payload, created_at) VALUES ('tfidf', 'k', 'first', now())")
    failures: list[BaseException] = []

    def second() -> None:
        try:
            store.save_model("tfidf", "k", {"fitted": "second"})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    saving = threading.Thread(target=second)
    saving.start()
    saving.join(timeout=1.0)
    assert saving.is_alive()  # waiting for the first worker's row
    other.commit()  # the first worker's save lands
    other.close()
    saving.join(timeout=30)
    assert not saving.is_alive() and failures == [], failures
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*), bool_and(payload != 'first') FROM model_cache "
                                 "WHERE kind = 'tfidf'")).one() == (1, True)


def test_a_refit_reads_every_star_only_when_the_community_takes_part(tmp_path: Path, database_url: str):
    """Whether everyone's stars are used is known from their count: an install where they
    cannot be (fewer readers with stars than `collaborative_min_users`) refits without reading
    them all (that read alone grew a refit's memory with the readers); one where they are
    reads them and fits the reader factors."""
    config, store, ids = _installed(tmp_path, database_url)
    papers = [p.id for p in store.batch_papers(store.all_batch_ids())]
    readers = [ids.of(u.email) for u in config.users]
    store.star_many([(uid, papers[n + k]) for n, uid in enumerate(readers) for k in range(2)], "import")
    every_star = []

    def watch(_conn, _cursor, statement, *_rest) -> None:  # noqa: ANN001
        if "FROM stars" in statement and "WHERE" not in statement and "count" not in statement.lower():
            every_star.append(statement)

    event.listen(store.engine, "before_cursor_execute", watch)
    few = replace(config, ranking=replace(config.ranking, community=CommunityMode.AUTO, collaborative_min_users=10))
    assert pipeline.load_models(store, few).collab is None and every_star == []
    everyone = replace(config, ranking=replace(config.ranking, community=CommunityMode.ON))
    assert pipeline.load_models(store, everyone).collab is not None and len(every_star) == 1
    event.remove(store.engine, "before_cursor_execute", watch)
    store.close()
