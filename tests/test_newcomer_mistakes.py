"""The usual mistakes of a first hour, through the installed command: each gets one line naming
the cause and the fix, no traceback, no repeat, and the exit code README gives (1 for
failures, 2 for usage and configuration mistakes)."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.store import Store
from recommender.store.outbox import Outbox

from conftest import SEEDS, recommender_command, smtp_section, wait_until, write_config
from smtp_server import SmtpServer, free_port

FIXTURES = Path(__file__).parent / "fixtures"
USER = '[[users]]\nemail = "ada@example.org"\n'


def _cli(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(recommender_command("--config", str(folder / "config.toml"), *args), cwd=folder,
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with ``code`` and said why in exactly one line, "Error: ..."."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return


@pytest.fixture
def web_folder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A folder served over HTTP on 127.0.0.1 (a feed host, or a web server on the SMTP port)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, server.server_address[1]
    server.shutdown()
    server.server_close()


def _queued_digest(tmp_path: Path, smtp: str) -> Path:
    path = write_config(tmp_path, users=USER, extra=smtp)
    assert _cli(tmp_path, "init").returncode == 0
    assert _cli(tmp_path, "ingest", str(SEEDS[0])).returncode == 0
    return path


# -- 6. the daemon ------------------------------------------------------------------------------
def test_the_daemon_logs_by_default_and_a_second_one_on_the_database_is_refused(tmp_path: Path, database_url: str):
    path = write_config(tmp_path, users=USER + 'timezone = "Europe/Berlin"\nsend_at = "07:30"\n',
                        database_url=database_url)
    assert _cli(tmp_path, "init").returncode == 0
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        first = subprocess.Popen(recommender_command("--config", str(path), "run"), cwd=tmp_path, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: "next digest of ada@example.org" in log_path.read_text(), 30), log_path.read_text()
        started = time.monotonic()
        second = _cli(tmp_path, "run", timeout=60)
        line = _one_error_line(second, 1)
        assert time.monotonic() - started < 20  # refused, not waiting
        assert "another `recommender run` is already running" in line and "stop that one first" in line
        assert first.poll() is None  # the first one runs on
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    output = log_path.read_text()
    assert "Traceback" not in output
    lines = output.splitlines()
    assert re.search(r"daemon started: config \S+config\.toml, 1 user\(s\), 0 source\(s\), delivery direct$", lines[0])
    # The next digest in the reader's own zone: 07:30 in Berlin is +01:00 in winter, +02:00 in summer.
    assert re.search(r"next digest of ada@example\.org: \d{4}-\d\d-\d\dT07:30:00\+0[12]:00 \(daily at 07:30 "
                     r"Europe/Berlin\)$", output, re.M)
    assert lines[-1].endswith("daemon stopped") and not any("apscheduler" in line for line in lines)
    # Once the first has stopped, a daemon starts again on the same database.
    with log_path.open("w") as log:
        again = subprocess.Popen(recommender_command("--config", str(path), "run"), cwd=tmp_path, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: "next digest of" in log_path.read_text(), 30), log_path.read_text()
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0


# -- 7. SMTP mistakes --------------------------------------------------------------------------
def test_a_port_where_nothing_listens_fails_at_once_with_a_hint(tmp_path: Path):
    port = free_port()
    _queued_digest(tmp_path, smtp_section(port, max_attempts=5, retry_initial_seconds=2))
    started = time.monotonic()
    line = _one_error_line(_cli(tmp_path, "digest", "send"), 1)
    assert time.monotonic() - started < 15  # not five attempts with a backoff
    assert line == (f"Error: connection to 127.0.0.1:{port} refused: check [smtp] host and port (and security = "
                    '"none": port 587 is usually starttls, 465 tls, 25 none)')
    store = Store.open(f"sqlite:///{tmp_path / 'db' / 'recommender.sqlite'}")
    try:
        [item] = Outbox(store).items()
        assert item.status == "pending" and item.last_error == ""  # nothing was tried: the next run sends it
    finally:
        store.close()


def test_a_web_server_on_the_smtp_port_is_found_out_within_the_timeout(tmp_path: Path,
                                                                       web_folder: tuple[Path, int]):
    _, port = web_folder
    _queued_digest(tmp_path, smtp_section(port, timeout_seconds=2, max_attempts=5))
    started = time.monotonic()
    line = _one_error_line(_cli(tmp_path, "digest", "send"), 1)
    assert time.monotonic() - started < 15
    assert line.startswith(f"Error: no SMTP greeting from 127.0.0.1:{port} within 2 s: check [smtp] host and port")


def test_after_the_smtp_settings_change_a_deferred_digest_is_tried_at_once(tmp_path: Path):
    busy = SmtpServer().start()
    busy.box.rcpt_reply = "451 4.3.0 mailbox busy, try later"
    good = SmtpServer().start()
    try:
        path = _queued_digest(tmp_path, smtp_section(busy.port, max_attempts=1, retry_delay_seconds=600))
        first = _cli(tmp_path, "digest", "send")
        assert first.returncode == 1 and "Traceback" not in first.stderr
        assert re.fullmatch(r"ada@example\.org: deferred until \S+ \S+ UTC: 451 4\.3\.0 mailbox busy, try later\n",
                            first.stdout)
        assert (first.stdout + first.stderr).count("mailbox busy") == 1  # printed once
        again = _cli(tmp_path, "digest", "send")  # same settings: the deferral holds
        assert "deferred until" in again.stdout and good.box.messages == []
        path.write_text(path.read_text().replace(f"port = {busy.port}", f"port = {good.port}"))
        fixed = _cli(tmp_path, "digest", "send")
        assert fixed.returncode == 0, fixed.stderr
        assert re.fullmatch(r"ada@example\.org: sent \d+ paper\(s\)\n", fixed.stdout)
        assert len(good.box.messages) == 1
    finally:
        busy.stop()
        good.stop()


# -- 8. serve and fetch --------------------------------------------------------------------------
def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path):
    write_config(tmp_path, users=USER)
    assert _cli(tmp_path, "init").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(_cli(tmp_path, "serve", "--port", str(port), timeout=30), 1)
    assert line == (f"Error: port {port} on 127.0.0.1 is already in use (another `recommender serve`?): stop that "
                    "process or choose another port with --port")


def test_each_failing_feed_is_reported_once(tmp_path: Path, web_folder: tuple[Path, int]):
    root, port = web_folder
    (root / "page.html").write_text("<!doctype html><html><body>Not a feed</body></html>", encoding="utf-8")
    down = free_port()
    sources = "".join(f'[[sources]]\nname = "{name}"\nkind = "arxiv"\nurl = "{url}"\n' for name, url in (
        ("missing", f"http://127.0.0.1:{port}/rss/cs.XX"), ("html", f"http://127.0.0.1:{port}/page.html"),
        ("down", f"http://127.0.0.1:{down}/rss/cs.LG")))
    write_config(tmp_path, users=USER, extra="[scheduler]\nfetch_attempts = 1\n" + sources)
    assert _cli(tmp_path, "init").returncode == 0
    done = _cli(tmp_path, "fetch")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    output = done.stdout + done.stderr
    for name in ("missing", "html", "down"):
        assert output.count(f"{name}: failed: ") == 1, output
    assert "HTTP 404" in output and "fetched 3 source(s): 0 new papers, 3 failed" in done.stderr
    assert len(output.strip().splitlines()) == 4  # a line per source and the summary


# -- 9. config check -------------------------------------------------------------------------------
def test_config_check_prints_error_and_suggests_the_key_meant(tmp_path: Path):
    write_config(tmp_path, users=USER, extra='[smtp]\nprot = 25\n[feedback]\nsecrets_env = "X"\n')
    done = _cli(tmp_path, "config", "check")
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    errors = done.stderr.splitlines()[:-1]
    assert errors == [f"Error: {tmp_path / 'config.toml'}: smtp.prot: unknown key (did you mean `port`?)",
                      f"Error: {tmp_path / 'config.toml'}: feedback.secrets_env: unknown key (did you mean `secret_env`?)"]
    assert done.stderr.splitlines()[-1] == "2 error(s)"
    (tmp_path / "config.toml").write_text(USER + '[smtp]\nzzz = 1\n')
    listed = _cli(tmp_path, "config", "check")
    assert listed.returncode == 2 and "expected one of" in listed.stderr
    assert "password" not in listed.stderr.replace("password_env", "")  # a refused key is never offered


# -- 10. titles alone --------------------------------------------------------------------------------
def test_an_import_says_how_many_papers_have_only_their_titles_and_how_to_fill_them_in(tmp_path: Path):
    source = (FIXTURES / "library" / "zotero-export.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(source)))
    for row in rows[:2]:
        row["Abstract Note"] = ""  # as Zotero exports an item without abstract
    exported = io.StringIO()
    writer = csv.DictWriter(exported, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(rows)
    library = tmp_path / "library.csv"
    library.write_text(exported.getvalue(), encoding="utf-8")
    write_config(tmp_path, users=USER)
    assert _cli(tmp_path, "init").returncode == 0
    assert _cli(tmp_path, "ingest", str(SEEDS[0])).returncode == 0  # papers to compare the library with
    done = _cli(tmp_path, "import-library", "--offline", str(library))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1, done.stderr
    assert notes[0].startswith("note: 2 of 4 imported papers have no abstract: your profile knows them by their "
                               "titles alone. Add the abstracts in your reference manager and import again (Zotero:")
    assert "without --offline" in notes[0]  # both have an arXiv id (from their ADS URL)
    # Complete, nothing to say.
    write_config(tmp_path, users=USER)
    shutil.copy(FIXTURES / "library" / "zotero-export.csv", tmp_path / "complete.csv")
    (tmp_path / "db" / "recommender.sqlite").unlink()
    assert _cli(tmp_path, "init").returncode == 0
    assert _cli(tmp_path, "ingest", str(SEEDS[0])).returncode == 0
    complete = _cli(tmp_path, "import-library", "--offline", str(tmp_path / "complete.csv"))
    assert complete.returncode == 0 and "note: " not in complete.stderr


def test_a_digest_refused_by_a_wrong_port_goes_out_once_the_port_is_right(tmp_path: Path):
    """The refusal changes nothing stored: the digest goes out, once, when the port is fixed."""
    server = SmtpServer().start()
    try:
        port = free_port()
        path = _queued_digest(tmp_path, smtp_section(port))
        _one_error_line(_cli(tmp_path, "digest", "send"), 1)
        path.write_text(path.read_text().replace(f"port = {port}", f"port = {server.port}"))
        done = _cli(tmp_path, "digest", "send")
        assert done.returncode == 0 and re.fullmatch(r"ada@example\.org: sent \d+ paper\(s\)\n", done.stdout)
        assert len(server.box.messages) == 1
    finally:
        server.stop()



def test_a_database_path_that_cannot_be_created_is_one_line(tmp_path: Path):
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    write_config(tmp_path, users=USER, database_url=f"sqlite:///{plain}/recommender.sqlite")
    line = _one_error_line(_cli(tmp_path, "init"), 2)
    assert f"cannot create the database {plain}/recommender.sqlite: Not a directory" in line
    assert "[database] url" in line
    assert plain.read_text() == "not a folder"


@pytest.mark.parametrize(("security", "said"), [
    ("starttls", "does not offer STARTTLS: check [smtp] security"),
    ("tls", 'answered without TLS (security = "tls" starts with it): check [smtp] host and port'),
])
def test_a_security_setting_the_server_does_not_speak_fails_at_once_naming_it(tmp_path: Path, security: str,
                                                                            said: str, smtp_server: SmtpServer):
    # smtp_server speaks plain SMTP and offers no STARTTLS
    _queued_digest(tmp_path, smtp_section(smtp_server.port, security=security, max_attempts=5,
                                          retry_initial_seconds=2))
    started = time.monotonic()
    line = _one_error_line(_cli(tmp_path, "digest", "send"), 1)
    assert time.monotonic() - started < 15  # not five attempts with a backoff
    assert said in line and not smtp_server.box.messages


def test_library_mistakes_are_one_line_each_naming_the_fix(tmp_path: Path):
    write_config(tmp_path, users=USER)
    assert _cli(tmp_path, "init").returncode == 0
    empty = tmp_path / "empty.bib"
    empty.write_text("")
    assert _one_error_line(_cli(tmp_path, "import-library", "--offline", str(empty)), 1) \
        == f"Error: {empty}: empty file: no entries to import"
    library = FIXTURES / "library" / "better-bibtex-philosophy.bib"
    assert _one_error_line(_cli(tmp_path, "import-library", "--offline", "--format", "ris", str(library)), 1) \
        == f"Error: {library}: nothing could be read as ris: it looks like bibtex (leave out --format to read it as such)"
    assert _one_error_line(_cli(tmp_path, "unstar", "bogus123"), 1) \
        == "Error: no paper with id 'bogus123' (see `recommender stars` for your starred papers)"


@pytest.mark.parametrize(("url", "hint"), [
    ("postgres://ada@localhost/db", "(write postgresql+psycopg://USER@HOST:PORT/DATABASE, and install the postgres extra)"),
    ("mysql://ada@localhost/db", "(the database is SQLite, sqlite:///PATH, or PostgreSQL, postgresql+psycopg://"),
])
def test_a_database_url_of_no_driver_says_the_form_meant(tmp_path: Path, url: str, hint: str):
    write_config(tmp_path, users=USER)
    line = _one_error_line(_cli(tmp_path, "--database-url", url, "stars"), 2)
    assert line.startswith("Error: cannot open database ") and hint in line
