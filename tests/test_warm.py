"""`recommender warm` as a real subprocess, and the command line handing `recommend` to it over
its Unix socket: the same output and exit status as without it, never a stale answer, and a
clean fall-back when it is gone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.app.warm_client import socket_folder, socket_name, warm_request

from conftest import SECRET, SEEDS, recommender_command, wait_until, write_config


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short folder for the socket (a Unix socket's path is limited to ~107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rw-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _command(tmp_path: Path, *args: str, code: int = 0,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(recommender_command("--config", str(tmp_path / "config.toml"), *args), cwd=tmp_path,
                          env=env or dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two readers with stars and a new batch, built once (nine cold commands) for every test
    here: each test works on its own copy (``project``)."""
    folder = tmp_path_factory.mktemp("warm-project")
    # The module's fixture runs before the per-test environment of conftest: set its parts here.
    env = dict(os.environ, RECOMMENDER_SECRET=SECRET, XDG_RUNTIME_DIR=str(folder / "no-runtime-dir"),
               XDG_CACHE_HOME=str(folder / "cache"), RECOMMENDER_ARXIV_API_URL="http://127.0.0.1:9/api/query")
    write_config(folder, users='[[users]]\nemail = "ada@example.org"\n[[users]]\nemail = "bob@example.org"\n')
    _command(folder, "init", env=env)
    _command(folder, "ingest", *map(str, SEEDS[:3]), env=env)
    for email, title_word in (("ada@example.org", "language"), ("bob@example.org", "image")):
        ids = [line.split("\t")[0] for line in _command(folder, "papers", "search", title_word, env=env)
               .stdout.splitlines()][:4]
        assert ids, title_word
        _command(folder, "star", "--user", email, *ids, env=env)
    _command(folder, "ingest", str(SEEDS[3]), env=env)
    return folder


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("no-runtime-dir"))
    return tmp_path


class Warm:
    def __init__(self, project: Path):
        self.log_path = project / "warm.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(recommender_command("-v", "--config", str(project / "config.toml"), "warm"),
                                        cwd=project, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        assert wait_until(lambda: "warm: ready\n" in self.log(), 60, every=0.05), self.log()

    def log(self) -> str:
        return self.log_path.read_text()

    def answered(self) -> int:
        return self.log().count("warm: answered recommend")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def warm(project: Path, runtime_dir: Path) -> Iterator[Warm]:
    server = Warm(project)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def _cold(project: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The command run without a warm process (none listens in this runtime folder)."""
    saved = os.environ["XDG_RUNTIME_DIR"]
    os.environ["XDG_RUNTIME_DIR"] = str(project / "elsewhere")
    try:
        return _command(project, *args, code=code)
    finally:
        os.environ["XDG_RUNTIME_DIR"] = saved


def test_recommend_answered_warm_equals_cold_and_follows_new_ingests(project: Path, warm: Warm):
    for args in (("recommend", "--user", "ada@example.org", "--json"),
                 ("recommend", "--all-users", "--limit", "3"),
                 ("-v", "recommend", "--user", "bob@example.org", "--batch", "all", "--json")):
        before = warm.answered()
        hot, cold = _command(project, *args), _cold(project, *args)
        assert warm.answered() == before + 1  # the warm process did answer
        assert hot.stdout == cold.stdout and hot.stdout.count("\n") >= 3
        assert hot.stderr.splitlines()[-1] == cold.stderr.splitlines()[-1]  # the summary line
    # An ingest refits the model: the warm process notices and answers from the new batch.
    old = _command(project, "recommend", "--user", "ada@example.org", "--json").stdout
    _command(project, "ingest", str(SEEDS[4]))
    new = _command(project, "recommend", "--user", "ada@example.org", "--json").stdout
    assert new != old and new == _cold(project, "recommend", "--user", "ada@example.org", "--json").stdout
    # New stars change the answer at once too.
    first = json.loads(new.splitlines()[0])["paper_id"]
    _command(project, "star", "--user", "ada@example.org", first)
    starred = _command(project, "recommend", "--user", "ada@example.org", "--json").stdout
    assert first not in [json.loads(line)["paper_id"] for line in starred.splitlines()]
    assert starred == _cold(project, "recommend", "--user", "ada@example.org", "--json").stdout
    # A user added to the config is known at once: the config is read for every request.
    config = project / "config.toml"
    config.write_text(config.read_text() + '[[users]]\nemail = "cy@example.org"\n')
    newcomer = _command(project, "recommend", "--user", "cy@example.org", "--json")
    assert newcomer.stdout == _cold(project, "recommend", "--user", "cy@example.org", "--json").stdout
    assert json.loads(newcomer.stdout.splitlines()[0])["user"] == "cy@example.org"
    # Commands it does not answer run as usual beside it.
    before = warm.answered()
    assert "ada@example.org" in _command(project, "users", "list").stdout
    assert warm.answered() == before
    assert warm.stop() == 0
    assert not any(Path(os.environ["XDG_RUNTIME_DIR"], "recommender").iterdir())  # socket removed


def test_errors_come_back_as_one_line_and_the_same_exit_status(project: Path, warm: Warm):
    for args, code in ((("recommend", "--user", "nobody@example.org"), 2), (("recommend", "--limit", "x"), 2),
                       (("recommend",), 2)):
        before = warm.answered()
        hot, cold = _command(project, *args, code=code), _cold(project, *args, code=code)
        assert warm.answered() == before + 1
        assert hot.stderr == cold.stderr and "Traceback" not in hot.stderr
    # Requests warm_client never sends are refused with a message, and the process goes on.
    path = next(Path(os.environ["XDG_RUNTIME_DIR"], "recommender").iterdir())
    config = str(project / "config.toml")
    good = {"config": config, "database_url": None, "verbose": 0, "command": ["recommend"], "cwd": str(project)}
    for request in (b"not json", json.dumps([1]).encode(), json.dumps({**good, "command": ["init"]}).encode(),
                    json.dumps({**good, "verbose": 10**9}).encode(), json.dumps({**good, "config": "/x"}).encode()):
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(str(path))
            socket.send_fds(connection, [request], [out.fileno(), err.fileno()])
            connection.shutdown(socket.SHUT_WR)
            reply = connection.recv(64)
        err.seek(0)
        assert reply in (b"", b"2"), request
        assert reply == b"" or err.read() == b"Error: the warm process refused a request it does not answer\n"
    hot = _command(project, "recommend", "--user", "ada@example.org")
    assert hot.stdout == _cold(project, "recommend", "--user", "ada@example.org").stdout
    assert warm.stop() == 0


def test_a_killed_warm_process_leaves_commands_working_and_can_be_restarted(project: Path, warm: Warm):
    expected = _cold(project, "recommend", "--user", "ada@example.org").stdout
    warm.process.send_signal(signal.SIGKILL)
    warm.process.wait()
    socket_left = Path(os.environ["XDG_RUNTIME_DIR"], "recommender")
    assert len(list(socket_left.iterdir())) == 1  # its socket stays behind, nobody listening
    assert _command(project, "recommend", "--user", "ada@example.org").stdout == expected
    again = Warm(project)
    try:
        second = subprocess.run(recommender_command("--config", str(project / "config.toml"), "warm"), cwd=project,
                                env=dict(os.environ), capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already answers" in second.stderr
        assert second.stderr.count("\n") == 1
        assert _command(project, "recommend", "--user", "ada@example.org").stdout == expected
        assert again.answered() == 1
    finally:
        assert again.stop() == 0


def test_which_command_lines_go_to_a_warm_process(tmp_path: Path):
    config = write_config(tmp_path)
    env = {"RECOMMENDER_DATABASE_URL": "sqlite:///x.sqlite"}
    request = warm_request(["-vv", "--config=config.toml", "recommend", "--json"], env, tmp_path)
    assert request == {"config": str(config), "database_url": "sqlite:///x.sqlite", "verbose": 2,
                       "command": ["recommend", "--json"], "cwd": str(tmp_path)}
    assert warm_request(["recommend"], {"RECOMMENDER_CONFIG": str(config)}, Path("/"))["config"] == str(config)
    assert warm_request(["--config", "config.toml", "--database-url", "u", "recommend"], {}, tmp_path)[
        "database_url"] == "u"
    for argv in (["--config", "config.toml", "ingest", "x"], ["--help", "recommend"], ["--version"], [],
                 ["--config", "missing.toml", "recommend"], ["--config"], ["-x", "recommend"]):
        assert warm_request(argv, {}, tmp_path) is None, argv
    # One socket per config file and database override.
    names = {socket_name(str(config), None), socket_name(str(config), "u"), socket_name(str(tmp_path / "b"), None)}
    assert len(names) == 3


def test_the_socket_folder_must_be_private(tmp_path: Path):
    runtime = tmp_path / "run"
    folder = socket_folder({"XDG_RUNTIME_DIR": str(runtime)}, create=True)
    assert folder == runtime / "recommender" and folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)
    assert socket_folder({"XDG_RUNTIME_DIR": str(runtime)}) is None
    assert socket_folder({"XDG_RUNTIME_DIR": str(tmp_path / "absent")}) is None


def _warm_socket(project: Path) -> Path:
    request = warm_request(["recommend"], {"RECOMMENDER_CONFIG": str(project / "config.toml")}, project)
    assert request is not None
    folder = socket_folder(os.environ)
    assert folder is not None
    return folder / socket_name(str(request["config"]), request["database_url"])


def test_a_silent_caller_does_not_hold_the_warm_process(project: Path, warm: Warm):
    expected = _cold(project, "recommend", "--user", "ada@example.org", "--json").stdout
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(_warm_socket(project)))  # connects and never says anything
    try:
        started = time.monotonic()
        answer = _command(project, "recommend", "--user", "ada@example.org", "--json")
        assert answer.stdout == expected
        assert time.monotonic() - started < 30
        assert wait_until(lambda: "unreadable request" in warm.log(), 10, every=0.05)  # the idle caller was dropped
        before = warm.answered()
        assert _command(project, "recommend", "--user", "ada@example.org", "--json").stdout == expected
        assert warm.answered() == before + 1  # and the warm process answers again
    finally:
        idle.close()


def test_a_caller_whose_output_nobody_reads_does_not_hang_later_commands(project: Path, warm: Warm):
    expected = _cold(project, "recommend", "--user", "bob@example.org", "--json").stdout
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    try:
        while True:
            os.write(writer, b"x" * 4096)  # fill the pipe: `recommend ... | sleep 30` once output is large
    except BlockingIOError:
        pass
    os.set_blocking(writer, True)
    stuck = subprocess.Popen(recommender_command("--config", str(project / "config.toml"), "recommend", "--user",
                                                 "ada@example.org"), cwd=project, stdout=writer,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        later = _command(project, "recommend", "--user", "bob@example.org", "--json")
        assert later.stdout == expected and time.monotonic() - started < 30
        assert stuck.wait(timeout=30) != 0  # the stuck caller got an error, not a hang
    finally:
        stuck.kill()
        os.close(reader)
        os.close(writer)
