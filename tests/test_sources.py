"""Parsers for each source kind on recorded fixtures, and fetching: folders and web feeds
(HTTP stubbed at the transport layer, so our fetch code runs for real)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from recommender.base.config import load_config
from recommender.base.errors import InputError
from recommender.pipeline.fetching import Fetcher
from recommender.sources import arxiv, hf_daily, parse
from recommender.store import Store

from conftest import SEEDS, Invoke, write_config

DATA = Path(__file__).parent / "data"


def test_hf_daily_fixture():
    batch = hf_daily.parse((DATA / "hf_daily.json").read_bytes(), "hf.json")
    assert [(e.arxiv_id, e.title) for e in batch.entries] == [
        ("2503.01234", "Sparse Attention for Long Contexts"), ("2503.05678", "Optimal Transport for Data Selection")]
    assert batch.entries[0].authors == ("Alice Smith", "Bob Jones")
    assert batch.entries[1].url == "https://arxiv.org/abs/2503.05678"


def test_arxiv_rss_skips_replacements_unless_asked():
    data = (DATA / "arxiv_rss.xml").read_bytes()
    batch = arxiv.parse(data, "rss")
    assert [e.arxiv_id for e in batch.entries] == ["2503.10001", "2503.10002"]
    assert batch.entries[0].abstract == "We adapt diffusion models to tabular data with mixed types."
    assert batch.entries[0].authors == ("Dana Lee", "Evan Park")
    # A description of the current feed is plain text: what looks like a tag is the abstract's own text.
    assert batch.entries[1].abstract == "Cross-listed work on <b>graph</b> transformers."
    assert [e.arxiv_id for e in arxiv.parse(data, "rss", include_replacements=True).entries][-1] == "2401.00003"


def test_arxiv_atom_drops_versions():
    batch = parse((DATA / "arxiv_atom.xml").read_bytes(), "atom")  # detected by content
    assert [e.arxiv_id for e in batch.entries] == ["2503.10001", "2503.10009"]
    assert batch.entries[0].title == "Diffusion Models for Tabular Data"


@pytest.mark.parametrize("name, fmt, message", [
    ("not_a_feed.html", "arxiv", "not an RSS or Atom feed"),
    ("hf_truncated.json", "hf_daily", "not valid JSON"),
    ("arxiv_rss.xml", "hf_daily", "not valid JSON"),
    ("hf_daily.json", "arxiv", "not an RSS or Atom feed"),
])
def test_broken_responses_fail_clearly(name: str, fmt: str, message: str):
    with pytest.raises(InputError, match=message):
        parse((DATA / name).read_bytes(), name, fmt)


def _fetch_config(tmp_path: Path, sources: str) -> tuple[object, Store]:
    config = load_config(write_config(tmp_path, extra=sources + "\n[scheduler]\nfetch_attempts = 3\n"))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    return config, store


def test_folder_source_picks_up_new_files_once(tmp_path: Path):
    config, store = _fetch_config(tmp_path, '[[sources]]\nname = "inbox"\nkind = "trending_page"\npath = "inbox/*.txt"\n')
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    fetcher = Fetcher(config, store)
    assert fetcher.fetch(fetcher.sources())[0].status == "unchanged"
    shutil.copy(SEEDS[0], inbox / "a.txt")
    first = fetcher.fetch(fetcher.sources())[0]
    assert (first.status, first.entries, first.new_papers) == ("new", 98, 98)
    assert fetcher.fetch(fetcher.sources())[0].status == "unchanged"  # same content: skipped
    shutil.copy(SEEDS[1], inbox / "b.txt")
    (inbox / "broken.txt").write_bytes(b"\xff\xfe garbage")
    second = fetcher.fetch(fetcher.sources())[0]
    assert (second.status, second.entries) == ("new", 91)
    assert [b.source for b in store.batches()] == ["inbox", "inbox"]


class FakeWeb:
    """Answers requests from a table of (status, headers, body); records what was asked."""

    def __init__(self, responses: dict[str, list[tuple[int, dict[str, str], bytes]]]):
        self.responses = responses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.responses[str(request.url)]
        status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        if status == 200 and "etag" in headers and request.headers.get("if-none-match") == headers["etag"]:
            return httpx.Response(304)
        return httpx.Response(status, headers=headers, content=body)


SOURCES = """
[[sources]]
name = "hf"
kind = "hf_daily"
url = "https://hf.example/api/daily_papers?date={date}"
[[sources]]
name = "lg"
kind = "arxiv"
url = "https://feeds.example/rss/cs.LG"
"""


def _fetcher(tmp_path: Path, web: FakeWeb) -> tuple[Fetcher, Store]:
    config, store = _fetch_config(tmp_path, SOURCES)
    client = httpx.Client(transport=httpx.MockTransport(web), follow_redirects=False)
    clock = lambda: datetime(2025, 3, 12, 8, 0, tzinfo=UTC)  # noqa: E731
    return Fetcher(config, store, client=client, clock=clock, retry_wait=0.001), store


def test_web_sources_fetch_with_conditional_requests_and_retries(tmp_path: Path):
    hf_url = "https://hf.example/api/daily_papers?date=2025-03-12"
    web = FakeWeb({
        hf_url: [(503, {}, b"busy"), (200, {"etag": '"v1"'}, (DATA / "hf_daily.json").read_bytes())],
        "https://feeds.example/rss/cs.LG": [(200, {"last-modified": "Wed, 12 Mar 2025 04:00:00 GMT"},
                                              (DATA / "arxiv_rss.xml").read_bytes())],
    })
    fetcher, store = _fetcher(tmp_path, web)
    outcomes = {o.source: o for o in fetcher.fetch(fetcher.sources())}
    assert (outcomes["hf"].status, outcomes["hf"].new_papers) == ("new", 2)
    assert (outcomes["lg"].status, outcomes["lg"].new_papers) == ("new", 2)
    assert [r.url.host for r in web.requests].count("hf.example") == 2  # one retry after the 503
    assert web.requests[0].headers["user-agent"].startswith("recommender/")
    again = {o.source: o for o in fetcher.fetch(fetcher.sources())}
    assert again["hf"].status == "unchanged" and again["hf"].detail == "not modified"
    assert web.requests[-1].headers["if-modified-since"] == "Wed, 12 Mar 2025 04:00:00 GMT"
    assert len(store.latest_run_batch_ids()) == 2 or len(store.batches()) == 2


def test_a_bad_source_fails_alone(tmp_path: Path):
    web = FakeWeb({
        "https://hf.example/api/daily_papers?date=2025-03-12": [(200, {}, (DATA / "not_a_feed.html").read_bytes())],
        "https://feeds.example/rss/cs.LG": [(200, {}, (DATA / "arxiv_atom.xml").read_bytes())],
    })
    fetcher, store = _fetcher(tmp_path, web)
    outcomes = {o.source: o for o in fetcher.fetch(fetcher.sources())}
    assert outcomes["hf"].status == "failed" and "not valid JSON" in outcomes["hf"].detail
    assert outcomes["lg"].status == "new" and len(store.papers()) == 2


@pytest.mark.parametrize("responses, message", [
    ([(500, {}, b"")], "HTTP 500 (after 3 attempts)"),
    ([(404, {}, b"")], "HTTP 404"),
    ([(302, {"location": "https://elsewhere.example/feed"}, b"")], "redirect to another host (elsewhere.example)"),
    ([(200, {"content-length": "999999999"}, b"[]")], "over the 20000000-byte cap"),
])
def test_transport_failures_are_reported(tmp_path: Path, responses, message: str):
    web = FakeWeb({"https://hf.example/api/daily_papers?date=2025-03-12": responses,
                   "https://feeds.example/rss/cs.LG": [(200, {}, (DATA / "arxiv_rss.xml").read_bytes())]})
    fetcher, store = _fetcher(tmp_path, web)
    outcome = fetcher.fetch(fetcher.sources(["hf"]))[0]
    assert outcome.status == "failed" and message in outcome.detail


def test_same_host_redirects_are_followed(tmp_path: Path):
    web = FakeWeb({
        "https://hf.example/api/daily_papers?date=2025-03-12": [(301, {"location": "/api/v2/daily"}, b"")],
        "https://hf.example/api/v2/daily": [(200, {}, (DATA / "hf_daily.json").read_bytes())],
    })
    fetcher, _ = _fetcher(tmp_path, web)
    assert fetcher.fetch(fetcher.sources(["hf"]))[0].status == "new"


def test_timeouts_are_retried_then_reported(tmp_path: Path):
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    config, store = _fetch_config(tmp_path, SOURCES)
    client = httpx.Client(transport=httpx.MockTransport(timeout))
    outcome = Fetcher(config, store, client=client, retry_wait=0.001).fetch(config.sources[:1])[0]
    assert outcome.status == "failed" and "timed out (after 3 attempts)" in outcome.detail


def test_fetch_command_reports_each_source(run: Invoke, tmp_path: Path):
    path = write_config(tmp_path, extra='[[sources]]\nname = "inbox"\nkind = "jsonl"\npath = "inbox/*.jsonl"\n')
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "x.jsonl").write_text(json.dumps({"title": "A paper", "abstract": "x"}) + "\n")
    run("init", config=path)
    result = run("fetch", config=path)
    assert "inbox: 1 entries, 1 new papers" in result.stdout
    assert "no source named 'nope'" in run("fetch", "--source", "nope", config=path, code=1).stderr


def test_an_empty_day_from_either_source_is_nothing_new(tmp_path: Path):
    web = FakeWeb({
        "https://hf.example/api/daily_papers?date=2025-03-12": [(200, {}, b"[]")],
        "https://feeds.example/rss/cs.LG": [(200, {}, b'<?xml version="1.0"?><rss version="2.0"><channel>'
                                                       b"<title>cs.LG updates on arXiv.org</title></channel></rss>")],
    })
    fetcher, store = _fetcher(tmp_path, web)
    outcomes = {o.source: o for o in fetcher.fetch(fetcher.sources())}
    assert {name: o.status for name, o in outcomes.items()} == {"hf": "unchanged", "lg": "unchanged"}
    assert store.batches() == []
