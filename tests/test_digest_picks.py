"""Digests stored as what they are (entries, Message-ID, date) and rendered when sent: the same
bytes at every attempt, after a crash too; digests stored before (with their message) still go
out after the upgrade to 0015."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import func, select, text

from recommender import pipeline
from recommender.base.config import load_config
from recommender.pipeline import digests
from recommender.store import Store, migrate
from recommender.store.outbox import Outbox
from recommender.store.schema import DigestMessageRow, DigestRow

from conftest import SEEDS, smtp_section, write_config
from smtp_server import SmtpServer

NOW = datetime(2025, 3, 21, 7, 30, tzinfo=UTC)
USERS = ('[[users]]\nemail = "ada@example.org"\nname = "Ada"\nmax_items = 5\ninterests = ["optimal transport"]\n'
         '[[users]]\nemail = "bob@example.org"\nmax_items = 3\n')


def _setup(tmp_path: Path, port: int, database_url: str):
    config = load_config(write_config(tmp_path, users=USERS, extra=smtp_section(port), database_url=database_url))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 3, 20))
    return config, store


def test_a_queued_digest_stores_no_message_and_renders_the_same_bytes_at_every_attempt(
        tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    config, store = _setup(tmp_path, smtp_server.port, database_url)
    digests.queue_digests(digests.DigestWork(config, store, lambda: NOW), config.users)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(DigestMessageRow)).scalar_one() == 0
        assert {r.dated_at for r in conn.execute(select(DigestRow.dated_at))} == {NOW}
    items = {i.email: i for i in Outbox(store).items()}
    # Rendered later, by a clock that has moved on: the message keeps the digest's date.
    later = digests.DigestWork(config, store, lambda: NOW + timedelta(days=2))
    first = {email: digests.message_of(later, item.id) for email, item in items.items()}
    assert first == {email: digests.message_of(digests.DigestWork(config, store), item.id)
                     for email, item in items.items()}
    assert f"Message-ID: {items['ada@example.org'].message_id}\r\n".encode() in first["ada@example.org"]
    assert b"Date: Fri, 21 Mar 2025 07:30:00 +0000\r\n" in first["ada@example.org"]
    for email, item in items.items():  # the subject listed in the outbox is the one rendered
        assert message_from_bytes(first[email], policy=policy.default)["Subject"] == item.subject
    # A sender that died holding the digests (its lease long over): the next delivery sends the same bytes.
    claimed = Outbox(store).claim("gone:1:dead", timedelta(seconds=1), now=NOW)
    assert {c.id for c in claimed} == {i.id for i in items.values()} and all(c.message is None for c in claimed)
    outcomes = digests.deliver_pending(later)
    assert sorted(o.status for o in outcomes) == ["sent", "sent"]
    assert sorted(smtp_server.box.raw) == sorted(first.values())
    assert [i.status for i in Outbox(store).items()] == ["sent", "sent"]
    assert digests.deliver_pending(later) == []  # nobody gets it twice


def test_digests_rendered_while_queueing_are_the_bytes_the_sender_renders_and_are_not_kept_once_sent(
        tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    """`digest send` with a delivering child renders each message as it stores the digest (on
    the queueing processes' cores): the same bytes as rendered from the entries, dropped once sent."""
    config, store = _setup(tmp_path, smtp_server.port, database_url)
    work = digests.DigestWork(config, store, lambda: NOW)
    digests.queue_digests(work, config.users, render=True)
    items = Outbox(store).items()
    stored = {i.id: Outbox(store).message(i.id) for i in items}
    assert len(stored) == 2 and all(stored.values())
    with store.write() as conn:  # the entries alone: as the sender renders them
        conn.execute(DigestMessageRow.__table__.delete())
    assert stored == {i.id: digests.message_of(work, i.id) for i in items}
    with store.write() as conn:
        conn.execute(DigestMessageRow.__table__.insert(), [{"digest_id": k, "message": v} for k, v in stored.items()])
    assert sorted(o.status for o in digests.deliver_pending(work)) == ["sent", "sent"]
    assert sorted(smtp_server.box.raw) == sorted(stored.values())
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(DigestMessageRow)).scalar_one() == 0


def test_the_web_view_and_the_mail_show_the_same_entries(tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, f"sqlite:///{tmp_path / 'db.sqlite'}")
    digests.run(config, store, config.users, lambda: NOW)
    item = next(i for i in Outbox(store).items() if i.email == "ada@example.org")
    assert item.status == "sent" and item.entries == 5
    sent = smtp_server.box.to("ada@example.org")[0].get_body(("plain",)).get_content()
    titles = [store.papers([e.paper_id])[0].title for e in Outbox(store).stored_entries([item.id])[item.id]]
    assert all(title.split()[0] in sent for title in titles)


def test_upgrade_from_0014_keeps_stars_clicks_and_outbox_and_sends_a_stored_message(
        tmp_path: Path, smtp_server: SmtpServer, database_url: str):
    config = load_config(write_config(tmp_path, users=USERS, extra=smtp_section(smtp_server.port),
                                      database_url=database_url))
    store = Store.open(config.database.url)
    migrate.upgrade(store.engine, target="0014")
    message = b"From: d@example.org\r\nTo: ada@example.org\r\nSubject: kept\r\nMessage-ID: <old@x>\r\n\r\nbody\r\n"
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'ada@example.org', '2026-01-01')"))
        conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                          "VALUES ('p1', 'a paper', 'A paper', 'x', '[]', '', '', '2026-01-01')"))
        conn.execute(text("INSERT INTO stars (user_id, paper_id, origin, created_at) "
                          "VALUES (1, 'p1', 'import', '2026-01-01')"))
        for digest_id, status in ((7, "sent"), (8, "pending")):
            conn.execute(text(
                "INSERT INTO digests (id, user_id, status, message_id, subject, last_batch_id, attempts, last_error, "
                "server_reply, lease_owner, created_at) VALUES (:i, 1, :s, :m, 'kept', 1, 0, '', '', '', '2026-01-01')"),
                {"i": digest_id, "s": status, "m": f"<old{digest_id}@x>"})
            conn.execute(text("INSERT INTO digest_messages (digest_id, message) VALUES (:i, :m)"),
                         {"i": digest_id, "m": message})
            conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why, match) "
                              "VALUES (:i, 0, 'p1', 0.5, 'because', 70)"), {"i": digest_id})
        conn.execute(text("INSERT INTO feedback (user_id, paper_id, digest_id, action, client, created_at) "
                          "VALUES (1, 'p1', 7, 'more', '', '2026-01-02')"))
    counts = "SELECT (SELECT count(*) FROM stars), (SELECT count(*) FROM feedback), (SELECT count(*) FROM digests), " \
             "(SELECT count(*) FROM digest_messages), (SELECT count(*) FROM digest_entries)"
    with store.engine.connect() as conn:
        before = tuple(conn.execute(text(counts)).one())
    assert before == (1, 1, 2, 2, 2)
    assert store.upgrade_schema() == ("0014", migrate.HEAD_REVISION)
    with store.engine.connect() as conn:
        assert tuple(conn.execute(text(counts)).one()) == before
    assert Outbox(store).stored_entries([8])[8][0].why == "because"
    outcomes = digests.deliver_pending(digests.DigestWork(config, store))
    assert [(o.digest_id, o.status) for o in outcomes] == [(8, "sent")]
    assert smtp_server.box.raw == [message]  # the stored message, byte for byte
    store.close()


def test_pruning_keeps_the_papers_of_rendered_at_send_digests_and_waits_for_owed_ones(
        tmp_path: Path, smtp_server: SmtpServer):
    config, store = _setup(tmp_path, smtp_server.port, f"sqlite:///{tmp_path / 'db.sqlite'}")
    digests.run(config, store, config.users, lambda: NOW)
    ada, bob = (next(i for i in Outbox(store).items() if i.email == email) for email in ("ada@example.org", "bob@example.org"))
    with store.write() as conn:  # ada's still owed (as if deferred)
        conn.execute(text("UPDATE digests SET status = 'pending' WHERE id = :i"), {"i": ada.id})
    outbox, later = Outbox(store), datetime.now(UTC) + timedelta(days=1)
    assert outbox.prune(later) == 1
    assert {e.why for e in outbox.stored_entries([bob.id])[bob.id]} == {""}
    assert all(e.why for e in outbox.stored_entries([ada.id])[ada.id])
    with store.write() as conn:
        conn.execute(text("UPDATE digests SET status = 'sent' WHERE id = :i"), {"i": ada.id})
    assert outbox.prune(later) == 2  # the mark waited at ada's (bob's again), then passes both
    assert outbox.prune(later) == 0
    assert {e.why for e in outbox.stored_entries([ada.id])[ada.id]} == {""}
    assert len(store.sent_map([ada.user_id])[ada.user_id]) == 5  # the papers stay: never sent twice
