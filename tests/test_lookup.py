"""Starring by arXiv id and completing imported libraries from the arXiv API, against a local
HTTP server that answers with recorded API responses (and with 503s, slow answers, malformed
bodies and an error entry); the 3-second spacing is checked with a controlled clock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from recommender.base.config import LookupConfig
from recommender.sources.arxiv_api import SPACING_SECONDS, ArxivLookup

from conftest import SEEDS, Invoke

FIXTURES = Path(__file__).parent / "fixtures"


def _cassette(name: str) -> tuple[int, bytes]:
    recorded = json.loads((FIXTURES / "arxiv" / name).read_text(encoding="utf-8"))
    return recorded["status_code"], recorded["body"].encode("latin-1")


@dataclass
class Answer:
    status: int
    body: bytes
    delay: float = 0.0


@dataclass
class RecordedApi:
    """Answers each request with the next queued answer (the last one again when the queue runs out)."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def api() -> Iterator[RecordedApi]:
    recorded = RecordedApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server hook
            recorded.requests.append(parse_qs(urlsplit(self.path).query))
            recorded.agents.append(self.headers.get("User-Agent", ""))
            answer = recorded.answers.pop(0) if len(recorded.answers) > 1 else recorded.answers[0]
            time.sleep(answer.delay)
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorded.url = f"http://127.0.0.1:{server.server_address[1]}/api/query"
    yield recorded
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _lookup(api: RecordedApi, clock: Clock, **config: object) -> ArxivLookup:
    return ArxivLookup(LookupConfig(arxiv_api_url=api.url, **config), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_ids_are_asked_100_a_request_three_seconds_apart(api: RecordedApi):
    api.answers = [Answer(*_cassette("api-2026-id-list-cassette.json"))]
    clock = Clock()
    ids = ["1707.08567"] + [f"2101.{n:05d}" for n in range(1, 150)]
    result = _lookup(api, clock).fetch(ids)
    assert [len(r["id_list"][0].split(",")) for r in api.requests] == [100, 50]
    assert api.requests[0]["id_list"][0].split(",")[0] == "1707.08567"
    assert clock.slept == [SPACING_SECONDS]  # the second request waited its turn
    assert list(result.found) == ["1707.08567"] and len(result.unknown) == 149 and not result.failed
    assert all(agent.startswith("recommender/") for agent in api.agents)


def test_temporary_failures_are_retried_then_reported(api: RecordedApi):
    api.answers = [Answer(503, b"busy"), Answer(*_cassette("api-2026-id-list-cassette.json"))]
    clock = Clock()
    result = _lookup(api, clock, attempts=2, retry_wait_seconds=1.0).fetch(["1707.08567"])
    assert list(result.found) == ["1707.08567"] and len(api.requests) == 2
    api.answers = [Answer(503, b"busy")]
    failed = _lookup(api, Clock(), attempts=2, retry_wait_seconds=1.0).fetch(["1707.08567"])
    assert failed.found == {} and "HTTP 503 (after 2 attempts)" in failed.failed


@pytest.mark.parametrize(("answer", "reason"), [
    (Answer(200, b"<feed><entry><title>cut"), "unreadable answer"),
    (Answer(*_cassette("api-2026-error-cassette.json")), "incorrect id format for abc"),
    (Answer(200, b"<feed/>", delay=2.0), "timed out"),
])
def test_malformed_error_and_slow_answers_are_reported_not_invented(api: RecordedApi, answer: Answer, reason: str):
    api.answers = [answer]
    result = _lookup(api, Clock(), attempts=1, timeout_seconds=0.5).fetch(["1707.08567"])
    assert result.found == {} and reason in result.failed


@pytest.fixture
def project(tmp_path: Path, config_path: Path, run: Invoke, api: RecordedApi, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECOMMENDER_ARXIV_API_URL", api.url)
    with config_path.open("a", encoding="utf-8") as config:  # a 503 is retried at once, not after 3 + 6 s
        config.write("\n[lookup]\nretry_wait_seconds = 0.01\n")
    run("init")
    run("ingest", str(SEEDS[0]))
    return tmp_path


@pytest.mark.parametrize("form", ["1707.08567", "arXiv:1707.08567v1", "https://arxiv.org/abs/1707.08567",
                                  "https://arxiv.org/pdf/1707.08567v1", "10.48550/arXiv.1707.08567"])
def test_starring_a_paper_not_stored_looks_it_up_once(project: Path, run: Invoke, api: RecordedApi, form: str):
    api.answers = [Answer(*_cassette("api-2026-id-list-cassette.json"))]
    result = run("star", form)
    assert "starred 1707.08567\tProceedings of Workshop AEW10" in result.stdout
    shown = json.loads(run("papers", "show", "1707.08567", "--json").stdout)
    assert shown["arxiv_id"] == "1707.08567" and shown["authors"][-2] == "Dirk Wübben" and len(shown["authors"]) == 34
    for other in ("arXiv:1707.08567", "https://arxiv.org/abs/1707.08567v1"):
        assert "already starred" in run("star", other).stderr
    assert len(api.requests) == 1  # stored now: no second lookup
    run("unstar", "arXiv:1707.08567v1")
    assert run("stars", "--json").stdout == ""


def test_an_id_arxiv_does_not_know_is_reported_and_offline_never_asks(project: Path, run: Invoke, api: RecordedApi):
    api.answers = [Answer(*_cassette("api-2026-id-list-cassette.json"))]  # knows only 1707.08567
    assert "arXiv has no paper '0808.05394'" in run("star", "0808.05394", code=1).stderr
    assert "--offline" in run("star", "--offline", "2101.00001", code=1).stderr
    api.answers = [Answer(503, b"down")]
    failed = run("star", "2101.00002", code=1)
    assert "could not look up 2101.00002 on arXiv" in failed.stderr and "Traceback" not in failed.stderr
    assert run("stars", "--json").stdout == ""


def test_import_library_completes_entries_from_arxiv_and_survives_a_failed_lookup(project: Path, run: Invoke,
                                                                                 api: RecordedApi, tmp_path: Path):
    bib = tmp_path / "lib.bib"
    bib.write_text("@misc{a, title = {Proceedings of Workshop AEW10}, eprint = {1707.08567}, archivePrefix = {arXiv}}\n"
                   "@misc{b, title = {A paper arXiv does not know}, eprint = {0808.05394}, archivePrefix = {arXiv}}\n")
    api.answers = [Answer(503, b"down")]
    down = run("import-library", str(bib))
    assert "arXiv lookup failed" in down.stderr and "2 imported" in down.stderr
    assert json.loads(run("papers", "show", "1707.08567", "--json").stdout)["abstract"] == ""
    api.answers = [Answer(*_cassette("api-2026-id-list-cassette.json"))]
    again = run("import-library", str(bib))
    assert "arXiv has no paper '0808.05394'" in again.stderr
    # The stored paper had no abstract: the second import completes it (a lookup only for ids without one).
    shown = json.loads(run("papers", "show", "1707.08567", "--json").stdout)
    assert shown["abstract"].startswith("The 10th Asia-Europe workshop in \"Concepts in Information Theory")
    requests_before = len(api.requests)
    run("import-library", "--offline", str(bib))
    assert len(api.requests) == requests_before


def test_stars_import_looks_up_arxiv_ids_not_stored(project: Path, run: Invoke, api: RecordedApi, tmp_path: Path):
    api.answers = [Answer(*_cassette("api-2026-id-list-cassette.json"))]
    rows = tmp_path / "stars.csv"
    rows.write_text("user,paper_id\nada@example.org,https://arxiv.org/abs/1707.08567v1\n")
    assert "imported 1 new star(s)" in run("stars", "import", str(rows)).stderr
    assert [json.loads(line)["id"] for line in run("stars", "--json").stdout.splitlines()] == ["1707.08567"]
