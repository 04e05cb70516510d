"""The feedback endpoint through its ASGI app (Starlette TestClient), on a real store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from recommender import pipeline
from recommender.base.config import Config, load_config
from recommender.base.link_signing import LinkSigner, LinkToken
from recommender.pipeline import digests, stored_models
from recommender.pipeline.web_site import web_app
from recommender.store import Store
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox

from conftest import SECRET, SEEDS, write_config

USERS = """
[[users]]
email = "ada@example.org"
name = "Ada"
max_items = 6
[[users]]
email = "bob@example.org"
max_items = 6
"""


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    config: Config
    store: Store
    clock: Clock
    client: TestClient

    def links(self, email: str) -> dict[str, list[str]]:
        """The links of the user's newest stored digest, by kind, in entry order."""
        item = [i for i in Outbox(self.store).items() if i.email == email][-1]
        message = message_from_bytes(digests.message_of(digests.DigestWork(self.config, self.store), item.id),
                                     policy=policy.default)
        text = message.get_body(("plain",)).get_content()
        found: dict[str, list[str]] = {}
        for kind, token in re.findall(r"http://127\.0\.0\.1:8080/(feedback/more|feedback/less|open|unsubscribe|digest)/([\w.-]+)", text):
            found.setdefault(kind, []).append(f"/{kind}/{token}")
        return found

    def clicks(self, email: str) -> list[str]:
        """The kinds of the reader's standing clicks, oldest first, as their profile reads them."""
        user_id = self.store.user_id(email)
        return [s.kind for s in self.store.signals([user_id]).get(user_id, []) if s.kind != "star"]

    def events(self) -> list[tuple[str, str, str]]:
        return [(e.email, e.action, e.paper_id) for e in FeedbackLog(self.store).events()]


def _world(tmp_path: Path, database_url: str | None = None, extra: str = "") -> World:
    path = write_config(tmp_path, users=USERS, extra=extra, database_url=database_url)
    config = load_config(path)
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:2], batch_date=date(2025, 3, 20))
    tarot = store.search_papers("TAROT")[0]
    store.star(store.user_id("ada@example.org"), [tarot.id])
    clock = Clock(datetime(2025, 3, 21, 7, 30, tzinfo=UTC))
    digests.queue_digests(digests.DigestWork(config, store, clock), config.users)
    client = TestClient(web_app(config, store, clock), base_url="http://127.0.0.1:8080")
    client.__enter__()  # runs the app's lifespan: its shutdown stops the click writer thread
    _open_clients.append(client)
    return World(config, store, clock, client)


_open_clients: list[TestClient] = []


@pytest.fixture(autouse=True)
def _shut_apps_down() -> Iterator[None]:
    """Every app a test made is shut down after it (no writer threads left behind)."""
    yield
    while _open_clients:
        _open_clients.pop().__exit__(None, None, None)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> World:
    w = _world(tmp_path, database_url)
    yield w
    w.store.close()


def _scores(world: World) -> dict[str, float]:
    user = world.config.users[0]
    picks = pipeline.recommend(world.config, world.store, [user], world.store.all_batch_ids(), limit=500)[user.email]
    return {r.paper.id: r.score for r in picks}


def _nearest_unsent(world: World, paper_id: str, candidates: dict[str, float]) -> str:
    """The rankable paper most similar to ``paper_id`` (by the same TF-IDF model)."""
    model = stored_models.text_model(world.store, world.config.ranking)
    ids = sorted(candidates)
    sims = (model.rows(ids) @ model.rows([paper_id]).T).toarray().ravel()
    return ids[int(sims.argmax())]


def test_less_pushes_close_neighbours_down_and_more_pulls_them_up(world: World):
    links = world.links("ada@example.org")
    entries = Outbox(world.store).entries(Outbox(world.store).items()[0].id)
    target = entries[0][1]
    before = _scores(world)
    response = world.client.get(links["feedback/less"][0])
    assert response.status_code == 200 and "Got it: fewer papers like" in response.text
    assert world.events() == [("ada@example.org", "less", target)]
    after_less = _scores(world)
    neighbour = _nearest_unsent(world, target, before)
    assert after_less[neighbour] < before[neighbour]
    # An opposite click on the same paper replaces the earlier one.
    response = world.client.get(links["feedback/more"][0])
    assert "Got it: more papers like" in response.text
    assert world.events() == [("ada@example.org", "more", target)]
    after_more = _scores(world)
    assert after_more[neighbour] > before[neighbour]


def test_a_replayed_click_counts_once_and_head_records_nothing(world: World):
    link = world.links("ada@example.org")["feedback/more"][1]
    assert world.client.head(link).status_code == 200
    assert world.events() == []
    first = world.client.get(link)
    second = world.client.get(link)
    assert first.status_code == second.status_code == 200 and first.text == second.text
    assert len(world.events()) == 1


def test_undo_removes_the_click(world: World):
    link = world.links("ada@example.org")["feedback/more"][0]
    page = world.client.get(link).text
    action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
    assert world.client.post(action).status_code == 200
    assert world.events() == []


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # tampered signature
    lambda t: "WyJtb3JlIiwxLDEsM10" + t[t.index("."):],  # payload swapped for another entry
    lambda t: "not-a-token",
])
def test_forged_and_tampered_tokens_record_nothing(world: World, mangle):
    link = world.links("ada@example.org")["feedback/more"][0]
    prefix, token = link.rsplit("/", 1)
    response = world.client.get(f"{prefix}/{mangle(token)}")
    assert response.status_code == 400 and "not valid" in response.text
    assert "Traceback" not in response.text and SECRET not in response.text
    assert world.events() == []


def test_tokens_signed_with_another_secret_or_for_another_user_are_refused(world: World):
    item = Outbox(world.store).items()[0]
    other = LinkSigner("some-other-secret-0123456789").sign(LinkToken("more", item.user_id, item.id, 0))
    assert world.client.get(f"/feedback/more/{other}").status_code == 400
    ada, bob = world.store.user_id("ada@example.org"), world.store.user_id("bob@example.org")
    signer = LinkSigner(SECRET, world.clock)
    cross = signer.sign(LinkToken("more", bob, item.id, 0))  # bob's id, ada's digest
    assert item.user_id == ada
    assert world.client.get(f"/feedback/more/{cross}").status_code == 404
    wrong_action = signer.sign(LinkToken("less", ada, item.id, 0))
    assert world.client.get(f"/feedback/more/{wrong_action}").status_code == 400
    assert world.events() == []


def test_expired_feedback_links_answer_410_but_unsubscribe_never_expires(world: World):
    links = world.links("ada@example.org")
    world.clock.now += timedelta(days=91)
    response = world.client.get(links["feedback/more"][0])
    assert response.status_code == 410 and world.events() == []
    assert world.client.get(links["unsubscribe"][0]).status_code == 200


def test_open_redirects_only_to_the_stored_paper(world: World):
    link = world.links("ada@example.org")["open"][0]
    paper = world.store.paper(Outbox(world.store).entries(1)[0][1])
    response = world.client.get(link + "?next=https://evil.example/&url=https://evil.example/", follow_redirects=False)
    assert response.status_code == 303
    target = response.headers["location"]
    assert target.startswith("https://arxiv.org/search/?query=") and "evil" not in target
    assert paper.title.split()[0].rstrip(":") in target
    assert world.events() == [("ada@example.org", "open", paper.id)]


def test_unsubscribe_page_and_one_click_post_stop_the_next_digest(world: World, run, tmp_path: Path):
    link = world.links("bob@example.org")["unsubscribe"][0]
    page = world.client.get(link)
    assert page.status_code == 200 and 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert world.client.post(link, content=b"nothing").status_code == 400
    response = world.client.post(link, content=b"List-Unsubscribe=One-Click",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and "unsubscribed" in response.text
    pipeline.ingest_files(world.store, SEEDS[2:3], batch_date=date(2025, 3, 21))
    results = {r.email: r.status for r in digests.queue_digests(digests.DigestWork(world.config, world.store, world.clock), world.config.users).values()}
    assert results["bob@example.org"] == "unsubscribed" and results["ada@example.org"] == "queued"
    assert world.client.post(link, content=b"x" * 5000).status_code == 413


def test_a_link_scanner_records_nothing(world: World):
    links = world.links("ada@example.org")
    more, less = links["feedback/more"], links["feedback/less"]
    for link in [more[0], more[1], more[2], less[0]]:
        world.client.get(link)
    assert len(world.events()) == 3  # "less" of the first paper replaced its "more": a reader may change their mind
    world.client.get(less[1])  # more and less of two papers within a minute: a scanner fetching every link
    assert world.events() == []


def test_a_link_clicked_over_and_over_is_one_hit_and_the_sweep_window_still_slides(world: World):
    """Repeat hits of one link keep one stored hit (its latest), so hammering a link costs
    nothing more to check; whether it counts toward a sweep depends on that latest hit."""
    from sqlalchemy import text

    links = world.links("ada@example.org")
    more, less, opens = links["feedback/more"], links["feedback/less"], links["open"]
    world.client.get(opens[2])
    for _ in range(40):
        assert world.client.get(more[0]).status_code == 200
    with world.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM link_hits")).scalar() == 2
    assert len(world.events()) == 2
    world.clock.now += timedelta(seconds=61)
    for link in (less[0], more[1], less[1]):  # the first paper's "more" is out of the window now
        world.client.get(link)
    assert sorted(e[1] for e in world.events()) == ["less", "less", "open"]
    world.client.get(more[0])  # its latest hit moves to now: more and less of two papers within a minute
    # The window's clicks are dropped; the open and the first paper's "more" of 61 s ago stay
    # (that "more" was made before the sweep, and the sweep's "less" replaced it only for a while).
    assert sorted(e[1] for e in world.events()) == ["more", "open"]


def test_a_sweep_a_minute_after_a_readers_click_takes_only_its_own_clicks(world: World):
    """A reader's "more", then a scanner sweeping the same digest more than a minute later (a
    forwarded message): the sweep's "less" on that paper replaces the reader's choice only until
    the sweep is found out, and the profile never learns the sweep's clicks."""
    links = world.links("ada@example.org")
    more, less = links["feedback/more"], links["feedback/less"]
    ada = world.store.user_id("ada@example.org")

    def choices() -> list[tuple[str, str]]:
        return [(s.kind, s.paper_id) for s in world.store.signals([ada]).get(ada, []) if s.kind != "star"]

    assert world.client.get(more[0]).status_code == 200
    first = choices()
    assert [kind for kind, _ in first] == ["more"]
    world.clock.now += timedelta(seconds=65)
    world.client.get(less[0])  # the sweep's first hit: for now the reader's choice on that paper
    assert [kind for kind, _ in choices()] == ["less"] and [e[1] for e in world.events()] == ["less"]
    for link in (more[0], more[1], less[1]):  # ... and the rest of it: more and less of two papers in a minute
        world.clock.now += timedelta(milliseconds=300)
        world.client.get(link)
    assert choices() == first and [e[1] for e in world.events()] == ["more"]


def test_a_change_of_mind_stands_and_a_link_chosen_again_stands_again(world: World):
    from sqlalchemy import text

    links = world.links("ada@example.org")
    more, less = links["feedback/more"], links["feedback/less"]
    world.client.get(more[0])
    world.clock.now += timedelta(seconds=65)
    world.client.get(less[0])
    assert world.clicks("ada@example.org") == ["less"]
    world.clock.now += timedelta(seconds=65)
    assert world.client.get(more[0]).status_code == 200  # changed back: recorded, not a repeat
    assert world.clicks("ada@example.org") == ["more"]
    with world.store.engine.connect() as conn:  # the "more", moved to now; the "less" kept behind it a while
        assert sorted(r[0] for r in conn.execute(text("SELECT action FROM feedback"))) == ["less", "more"]
    world.clock.now += timedelta(seconds=65)
    world.client.get(less[0])  # and again
    world.clock.now += timedelta(seconds=65)
    world.client.get(links["open"][0])  # the paper's next click past that minute: the replaced "more" goes
    assert world.clicks("ada@example.org") == ["less", "open"]
    with world.store.engine.connect() as conn:
        assert sorted(r[0] for r in conn.execute(text("SELECT action FROM feedback"))) == ["less", "open"]


def test_security_headers_and_errors_without_traces(world: World):
    for path in ("/", "/nope", "/feedback/more/x", world.links("ada@example.org")["feedback/more"][0]):
        response = world.client.get(path)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "script-src" not in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in response.text
    assert world.client.get("/").status_code == 200
    assert world.client.get("/nope").status_code == 404
    ids = [world.client.get("/").headers["x-request-id"] for _ in range(3)]
    assert len(set(ids)) == 3 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    missing = world.client.get("/nope")
    assert missing.headers["x-request-id"] in missing.text  # the error page names its request
    assert world.client.get("/feedback/more/" + "a" * 5000).status_code in (400, 414)


def test_rate_limit(tmp_path: Path):
    world = _world(tmp_path, extra="[feedback]\nrate_limit_per_minute = 3\n")
    link = world.links("ada@example.org")["feedback/more"][0]
    codes = [world.client.get(link).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_web_view_shows_the_digest_with_working_buttons(world: World):
    view = world.links("ada@example.org")["digest"][0]
    page = world.client.get(view)
    assert page.status_code == 200
    entries = Outbox(world.store).entries(1)
    assert page.text.count(">More like this</a>") == len(entries)
    # The match each entry had in the email, kept with it (not the 0 of a pick never ranked here).
    shown = [int(m) for m in re.findall(r">(\d+)% match<", page.text)]
    assert shown == [e[4] for e in entries] and shown[0] == 100 and shown == sorted(shown, reverse=True)
    more = re.findall(r'href="http://127\.0\.0\.1:8080(/feedback/more/[^"]+)"', page.text)[2]
    assert "Got it" in world.client.get(more).text
    assert world.events() == [("ada@example.org", "more", entries[2][1])]


def test_web_view_marks_the_papers_already_clicked(world: World):
    links = world.links("ada@example.org")
    assert "You clicked" not in world.client.get(links["digest"][0]).text
    for link in (links["feedback/more"][0], links["open"][0], links["feedback/less"][2]):
        assert world.client.get(link, follow_redirects=False).status_code in (200, 303)
    entries = world.client.get(links["digest"][0]).text.split('class="entry"')[1:]
    marks = [re.findall(r"You clicked: ([^<]*)<", entry) for entry in entries]
    assert len(entries) == len(Outbox(world.store).entries(1)) >= 3
    assert marks == [["more like this, opened"], [], ["less like this"]] + [[]] * (len(entries) - 3)


def test_a_deleted_paper_answers_404(world: World):
    link = world.links("ada@example.org")["feedback/more"][0]
    with world.store.write() as conn:
        conn.exec_driver_sql("DELETE FROM digest_entries WHERE position = 0")
    assert world.client.get(link).status_code == 404 and world.events() == []


@pytest.mark.parametrize("seed", range(4))
def test_clicks_recorded_in_one_group_match_clicks_recorded_one_at_a_time(tmp_path: Path, seed: int):
    """Group commit changes the transactions, not the outcomes: random click sequences (repeats,
    more/less flips on one paper, scanners, several clients and digests) give the same answers
    and the same stored feedback whether recorded together or one by one."""
    import random

    from recommender.store.feedback import ClickEvent

    rng = random.Random(seed)
    for name in ("together", "alone"):
        (tmp_path / name).mkdir()
    worlds = [_world(tmp_path / name) for name in ("together", "alone")]
    ada, bob = (worlds[0].store.user_id(e) for e in ("ada@example.org", "bob@example.org"))
    digest_ids = {item.user_id: item.id for item in Outbox(worlds[0].store).items()}
    entries = {user: [e[1] for e in Outbox(worlds[0].store).entries(digest_ids[user])] for user in (ada, bob)}
    start = datetime(2025, 3, 21, 8, 0, tzinfo=UTC)
    clicks = []
    for n in range(40):
        user = rng.choice((ada, bob))
        position = rng.randrange(len(entries[user]))
        action = rng.choice(("more", "less", "open"))
        clicks.append(ClickEvent(user, entries[user][position], action, digest_ids[user],
                                 f"{user}-{position}-{action}-{rng.randrange(2)}", rng.choice(("a", "b")),
                                 start + timedelta(seconds=n * rng.choice((0.1, 3)))))
    logs = [FeedbackLog(w.store) for w in worlds]
    with worlds[0].store.write() as conn:
        together = logs[0].record_clicks(conn, clicks)
    alone = []
    for click in clicks:
        with worlds[1].store.write() as conn:
            alone += logs[1].record_clicks(conn, [click])
    assert together == alone
    assert {"recorded", "repeat"} <= set(together)
    assert [(e.email, e.paper_id, e.action) for e in logs[0].events()] == \
        [(e.email, e.paper_id, e.action) for e in logs[1].events()]
    for w in worlds:
        w.store.close()


@pytest.mark.parametrize("token", [LinkToken("more", 1, 2, 3), LinkToken("unsubscribe", 10**12, 10**9, -1),
                                   LinkToken("open", 7, 7777777777, 19)])
def test_links_are_itsdangerous_tokens_that_a_plain_serializer_reads(token: LinkToken):
    """Links are signed without itsdangerous' zlib attempt (it dominated signing); they must
    stay tokens that its serializer verifies, identical to its own when it would not compress."""
    from itsdangerous import URLSafeTimedSerializer

    moment = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
    signed = LinkSigner(SECRET, lambda: moment).sign(token)
    plain = URLSafeTimedSerializer(SECRET, salt="recommender.links.v1")
    payload, stamp = plain.loads(signed, return_timestamp=True)
    assert payload == token.opaque and stamp == moment
    assert LinkSigner(SECRET, lambda: moment).verify(signed).opaque == token.opaque
    theirs = LinkSigner(SECRET, lambda: moment)._serializer.dumps(token.opaque)
    if not theirs.startswith("."):  # uncompressed: byte for byte the same token
        assert signed == theirs
    with pytest.raises(Exception, match="invalid"):
        LinkSigner(SECRET + "x", lambda: moment).verify(signed)


def test_a_digests_links_all_carry_the_time_it_was_made():
    """One issue time per digest (read from the clock once), however long rendering takes."""
    from recommender.digest.render import Links

    moments = iter(datetime(2026, 11, 22, 5, 0, second, tzinfo=UTC) for second in range(10))
    signer = LinkSigner(SECRET, lambda: next(moments))
    links = Links("http://x", signer, 3, 9)
    urls = [links.more(0), links.less(1), links.open(2), links.unsubscribe(), links.view()]
    tokens = [signer.verify(url.rsplit("/", 1)[1]) for url in urls]
    assert {t.issued_at for t in tokens} == {datetime(2026, 11, 22, 5, 0, 0, tzinfo=UTC)}
    assert [t.action for t in tokens] == ["more", "less", "open", "unsubscribe", "view"]
    assert signer.verify(Links("http://x", signer, 3, 9).more(0).rsplit("/", 1)[1]).issued_at.second == 1


def test_link_base64_is_itsdangerous_base64_for_every_padding():
    from itsdangerous.encoding import base64_encode

    from recommender.base.link_signing import _base64

    for data in [bytes(range(n)) for n in range(40)] + [b"\xfb\xff" * 9, b"\xff\xfe\xfd"]:
        assert _base64(data) == base64_encode(data)


def test_one_signer_stamps_each_link_with_the_time_it_was_signed():
    """The encoded timestamp is reused while the clock stays in one second, and only then."""
    moments = iter([datetime(2026, 11, 22, 5, 0, tzinfo=UTC)] * 2 + [datetime(2026, 11, 22, 5, 0, 1, tzinfo=UTC),
                                                                     datetime(2027, 1, 1, tzinfo=UTC)])
    now = [datetime(2026, 11, 22, 5, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] = next(moments)
        return now[0]

    signer = LinkSigner(SECRET, clock)
    for position in range(4):
        token = LinkToken("less", 3, 4, position)
        signed = signer.sign(token)
        assert signed == LinkSigner(SECRET, lambda: now[0])._serializer.dumps(token.opaque)
        assert signer.verify(signed).issued_at == now[0]


def test_the_endpoint_checkpoints_the_log_from_a_thread_never_inside_a_click(tmp_path: Path):
    """A commit that fills SQLite's log checkpoints it by default, fsync included: hundreds of
    milliseconds on a slow disk, with every queued click waiting. The endpoint's connections do
    not; a thread checkpoints what the clicks wrote."""
    world = _world(tmp_path)
    with world.store.write() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    assert world.client.get(world.links("ada@example.org")["feedback/more"][0]).status_code == 200
    checkpoints = world.client.app.state.checkpoints
    clicked = len(world.events())
    deadline = time.monotonic() + 10
    while (checkpoints.last is None or checkpoints.last[1] == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    busy, frames, done = checkpoints.last
    assert clicked == 1 and busy == 0 and frames > 0 and done == frames  # the whole log, by the thread
    world.store.close()


def test_a_later_sweep_does_not_undo_a_change_of_mind_made_before_it(world: World):
    """Day 1 "more", day 2 "less" (the reader's mind changed), day 3 a scanner sweeps the digest:
    the "less" stands, however the sweep's hits replaced it for the while."""
    links = world.links("ada@example.org")
    more, less = links["feedback/more"], links["feedback/less"]
    world.client.get(more[0])
    world.clock.now += timedelta(days=1)
    world.client.get(less[0])
    world.clock.now += timedelta(days=1)
    for link in (more[0], less[0], more[1], less[1]):
        world.clock.now += timedelta(milliseconds=300)
        world.client.get(link)
    assert world.clicks("ada@example.org") == ["less"] and [e[1] for e in world.events()] == ["less"]
