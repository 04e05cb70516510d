"""The endpoint served for real by uvicorn on a loopback port: concurrent clicks while a
digest run writes to the same SQLite file, and a browser clicking a button."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
import uvicorn

from recommender import pipeline
from recommender.base.config import Config, load_config
from recommender.pipeline import digests
from recommender.pipeline.web_site import web_app
from recommender.store import Store
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox

import browser
from conftest import SEEDS, smtp_section, write_config
from smtp_server import SmtpServer, free_port


class LiveServer:
    def __init__(self, app, port: int):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _links(config: Config, store: Store, digest_id: int, kind: str) -> list[str]:
    message = message_from_bytes(digests.message_of(digests.DigestWork(config, store), digest_id), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    return [f"/{kind}/{token}" for token in re.findall(rf"http://127\.0\.0\.1:\d+/{kind}/([\w.-]+)", text)]


@pytest.fixture
def live(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[object, Store, SmtpServer, LiveServer]]:
    port = free_port()
    users = "".join(f'[[users]]\nemail = "u{i}@example.org"\nmax_items = 4\n' for i in range(40))
    extra = smtp_section(smtp_server.port) + f'[feedback]\nbase_url = "http://127.0.0.1:{port}"\nrate_limit_per_minute = 0\n'
    config = load_config(write_config(tmp_path, users=users, extra=extra))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 20))
    with LiveServer(web_app(config, Store.open(config.database.url)), port) as server:
        yield config, store, smtp_server, server
    store.close()


def test_concurrent_clicks_while_digests_are_sent_lose_nothing(live):
    config, store, smtp_server, server = live
    first, second = config.users[:20], config.users[20:]
    assert all(r.status == "sent" for r in digests.run(config, store, first, lambda: datetime.now(UTC)))
    links = [link for item in Outbox(store).items() for link in _links(config, store, item.id, "feedback/more")[:3]]
    assert len(links) == 60
    errors: list[str] = []
    sender_results: list[object] = []

    def send_rest() -> None:
        try:
            sender_results.extend(digests.run(config, Store.open(config.database.url), second,
                                                 lambda: datetime.now(UTC)))
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    def click(link: str) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.get(link).status_code

    sender = threading.Thread(target=send_rest)
    sender.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(click, links))
    sender.join(timeout=120)
    assert errors == [] and codes == [200] * 60
    assert [r.status for r in sender_results] == ["sent"] * 20  # type: ignore[attr-defined]
    assert FeedbackLog(store).count() == 60
    assert len(smtp_server.box.messages) == 40


@pytest.mark.browser
@pytest.mark.skipif(browser.chromium() is None, reason=browser.SKIP_REASON)
def test_browser_clicks_more_like_this_on_the_web_view(live, tmp_path: Path):
    from selenium.webdriver.common.by import By

    config, store, _, server = live
    digests.run(config, store, config.users[:1], lambda: datetime.now(UTC))
    view = _links(config, store, 1, "digest")[0]
    driver = browser.start(tmp_path / "profile")
    try:
        driver.get(server.url + view)
        buttons = driver.find_elements(By.LINK_TEXT, "More like this")
        assert len(buttons) == 4
        buttons[1].click()
        deadline = time.monotonic() + 10
        while "Got it" not in driver.page_source and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Got it: more papers like" in driver.page_source
    finally:
        driver.quit()
    entries = Outbox(store).entries(1)
    assert [(e.action, e.paper_id) for e in FeedbackLog(store).events()] == [("more", entries[1][1])]
