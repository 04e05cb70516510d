"""A researcher's first hour, as README's "Your own setup" section lays it out, through the
installed `recommender` command: init, the library (a Better BibTeX export and a Zotero CSV)
before any feed, a real arXiv feed served on 127.0.0.1, recommend, explain, profile show,
digest preview, the daemon mailing the digest through a local SMTP server, two clicks on its
feedback links through the real endpoint, and recommend again. Every step exits 0 without a
traceback, and what each prints is checked."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import recommender_command, smtp_section
from smtp_server import SmtpServer, free_port

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
FEED = FIXTURES / "arxiv" / "atom-cs.AI-2025-08-20-excerpt.xml"  # rss.arxiv.org/atom/cs.AI of 2025-08-20
FEED_PAPERS = {"2508.13167": "Chain-of-Agents", "2508.13171": "Cognitive Workspace",
               "2508.13176": "Fitting Ontologies", "2508.13177": "Hardware-oriented Approach"}


@pytest.fixture
def feed_server(tmp_path: Path) -> Iterator[str]:
    """arXiv's feed file served as rss.arxiv.org serves it: GET /atom/cs.AI."""
    root = tmp_path / "arxiv.org"
    (root / "atom").mkdir(parents=True)
    shutil.copy(FEED, root / "atom" / "cs.AI")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/atom/cs.AI"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return


def _readme_setup() -> str:
    """The shell block of README's "Your own setup" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Your own setup\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def _commands(block: str) -> list[str]:
    """`recommender` subcommands in the order the block runs them ("profile show" as one)."""
    found = re.findall(r"^recommender ([a-z-]+(?: (?:check|show|preview))?)", block, re.M)
    return found


def _step(folder: Path, env: dict[str, str], ran: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """One command as the newcomer types it (config.toml found in the current folder)."""
    ran.append(" ".join(args[:2]) if args[0] in ("config", "profile", "digest") else args[0])
    done = subprocess.run(recommender_command(*args), cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _config(feed_url: str, smtp_port: int, web_port: int, send_at: str) -> str:
    return (f'[database]\nurl = "sqlite:///db/recommender.sqlite"\n'
            f'[feedback]\nbase_url = "http://127.0.0.1:{web_port}"\n'
            + smtp_section(smtp_port)
            + f'[[users]]\nemail = "ada@example.org"\nname = "Ada"\ntimezone = "UTC"\nsend_at = "{send_at}"\n'
              'max_items = 2\n'
            + f'[[sources]]\nname = "arxiv-ai"\nkind = "arxiv"\nurl = "{feed_url}"\n')


def test_the_first_hour_in_the_readme_order(tmp_path: Path, feed_server: str, smtp_server: SmtpServer):
    setup = _readme_setup()
    # The secret, made as README makes it.
    making = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    assert f'export RECOMMENDER_SECRET="$({making})"' in setup
    secret = subprocess.run(["python3", "-c", "import secrets; print(secrets.token_urlsafe(32))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, RECOMMENDER_SECRET=secret)
    ran: list[str] = []
    web_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(_config(feed_server, smtp_server.port, web_port, "23:59"), encoding="utf-8")

    checked = _step(tmp_path, env, ran, "config", "check")
    assert checked.stdout.startswith(f"{config}: OK: 1 user(s), 1 source(s), database sqlite:///")
    assert "database created" in _step(tmp_path, env, ran, "init").stdout

    # The library first, before any feed: a Better BibTeX export, then a Zotero CSV.
    bib = _step(tmp_path, env, ran, "import-library", str(FIXTURES / "library" / "better-biblatex-eprint.bib"))
    assert "ada@example.org: 1 imported, 0 matched stored papers, 1 added, 0 skipped, 1 new star(s)" in bib.stderr
    # Its one entry has no abstract and arXiv cannot be reached here: the import says so, once.
    assert bib.stderr.count("arXiv lookup failed") == 1
    assert bib.stderr.count("1 of 1 imported papers have no abstract") == 1 and "titles alone" in bib.stderr
    csv = _step(tmp_path, env, ran, "import-library", str(FIXTURES / "library" / "zotero-export.csv"))
    assert "ada@example.org: 4 imported, 0 matched stored papers, 4 added, 0 skipped, 4 new star(s)" in csv.stderr
    stars = _step(tmp_path, env, ran, "stars").stdout
    assert "1412.2970" in stars and "TOPCAT" in stars and len(stars.splitlines()) == 5

    fetched = _step(tmp_path, env, ran, "fetch")
    assert "arxiv-ai: 4 entries, 4 new papers" in fetched.stdout
    assert "fetched 1 source(s): 4 new papers, 0 failed" in fetched.stderr

    ranked = _step(tmp_path, env, ran, "recommend", "--limit", "10").stdout
    ids = re.findall(r"\((2508\.\d{5})\)$", ranked, re.M)
    assert sorted(ids) == sorted(FEED_PAPERS)  # every new paper of the feed, none of the library
    assert all(title in ranked for title in FEED_PAPERS.values())
    assert ranked.count("why: ") == 4 and "1412.2970" not in ranked

    explained = _step(tmp_path, env, ran, "explain", ids[0]).stdout
    assert FEED_PAPERS[ids[0]] in explained.splitlines()[0]
    assert "why: " in explained and re.search(r"near your starred paper \(\d\.\d+\): \S", explained)

    profile = _step(tmp_path, env, ran, "profile", "show").stdout
    assert profile.startswith("profile of ada@example.org") and "more of: " in profile
    assert all(f"+ {paper}\t" in profile for paper in ("1412.2970", "1707.02160"))

    preview = _step(tmp_path, env, ran, "digest", "preview", "--out", "preview/digest.html", "--text", "preview/digest.txt")
    assert preview.stdout.strip() == str(tmp_path / "preview" / "digest.html")
    assert "ada@example.org: preview of 2 paper(s)" in preview.stderr
    text = (tmp_path / "preview" / "digest.txt").read_text(encoding="utf-8")
    assert all(FEED_PAPERS[paper] in text for paper in ids[:2])

    # The endpoint for the links, and the daemon with the digest due in a few seconds.
    due = datetime.now(UTC) + timedelta(seconds=8)
    config.write_text(_config(feed_server, smtp_server.port, web_port, f"{due:%H:%M:%S}"), encoding="utf-8")
    ran += ["serve", "run"]
    web = subprocess.Popen(recommender_command("serve", "--port", str(web_port)), cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daemon_log = tmp_path / "daemon.log"
    with daemon_log.open("w") as log:
        daemon = subprocess.Popen(recommender_command("run"), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert _wait(lambda: len(smtp_server.box.messages) == 1, 60), daemon_log.read_text()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        output = daemon_log.read_text()
        assert "Traceback" not in output
        assert re.search(r"daemon started: config \S*config.toml, 1 user\(s\), 1 source\(s\)", output)
        assert f"next digest of ada@example.org: {due:%Y-%m-%dT%H:%M:%S}+00:00" in output
        assert "ada@example.org: sent 2 paper(s)" in output and output.rstrip().endswith("daemon stopped")

        message = smtp_server.box.messages[0]
        assert message["To"] == "Ada <ada@example.org>"
        body = message.get_body(("plain",)).get_content()
        assert all(FEED_PAPERS[paper] in body for paper in ids[:2])
        more = re.findall(r"More like this: (\S+)", body)
        less = re.findall(r"Less like this: (\S+)", body)
        assert len(more) == len(less) == 2

        assert _wait(lambda: _answers(f"http://127.0.0.1:{web_port}/"), 30)
        for link in (more[0], less[1]):  # more like the first pick, less like the second
            answer = httpx.get(link, timeout=10)
            assert answer.status_code == 200, answer.text
    finally:
        for process in (daemon, web):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()

    clicks = _step(tmp_path, env, ran, "feedback", "list").stdout
    assert re.search(rf"\bmore\b.*{ids[0]}", clicks) and re.search(rf"\bless\b.*{ids[1]}", clicks)

    again = _step(tmp_path, env, ran, "recommend", "--limit", "10").stdout
    # The two papers the digest sent are not recommended again; the two others are.
    assert sorted(re.findall(r"\((2508\.\d{5})\)$", again, re.M)) == sorted(ids[2:])

    # The steps above are README's, in README's order (with a look at the stars and the clicks between).
    readme = _commands(setup)
    assert readme == ["config check", "init", "import-library", "fetch", "recommend", "explain", "profile show",
                      "digest preview", "serve", "run"]
    assert [name for name in ran if name in readme] == ["config check", "init", "import-library", "import-library",
                                                        "fetch", "recommend", "explain", "profile show",
                                                        "digest preview", "serve", "run", "recommend"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
