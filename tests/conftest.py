"""Shared fixtures: a temp config and database per test, the seed pages, a CLI runner,
and the PostgreSQL server when one is reachable."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from smtp_server import SmtpServer

import recommender
from recommender.app.cli import cli
from recommender.base import parallel
from recommender.store import Store

REPO = Path(__file__).resolve().parent.parent
SEEDS = sorted((REPO / "seeds").glob("*.txt"))
SERVER_URL = os.environ.get("RECOMMENDER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Under pytest-xdist (`make test` runs one process per core) each process has a database of its
# own beside that one (test_gw0, ...), created when first needed: every test resets its schema.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_SERVER = make_url(SERVER_URL)
WORKER_DATABASE = f"{_SERVER.database}_{WORKER}" if WORKER else None
PG_URL = (_SERVER.set(database=WORKER_DATABASE).render_as_string(hide_password=False) if WORKER_DATABASE
          else SERVER_URL)
SECRET = "test-secret-0123456789abcdef"

# Property tests: the same examples on every CI run (a red CI then means a change, not a new draw);
# locally they explore.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# `make test` tests the installed wheel (templates and migrations from inside it) and says so;
# run from a checkout (`pip install -e '.[test]'` then `pytest`), the suite tests the checkout.
if os.environ.get("RECOMMENDER_TEST_WHEEL"):
    assert Path(recommender.__file__).resolve().parent != REPO / "recommender", "expected the installed wheel"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads a real config or writes outside its tmp_path."""
    for name in ("RECOMMENDER_CONFIG", "RECOMMENDER_DATABASE_URL", "RECOMMENDER_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECOMMENDER_SECRET", SECRET)
    # No test reaches the real arXiv API: lookups go to a closed port unless a test serves one.
    monkeypatch.setenv("RECOMMENDER_ARXIV_API_URL", "http://127.0.0.1:9/api/query")
    # No `recommender warm` of the developer's answers a test's command (the folder is absent).
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "no-runtime-dir"))
    # A PostgreSQL install's mapped copies of its models go to the test's folder.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    # Two worker processes wherever a test does not say otherwise, whatever the machine's cores:
    # the tests that split work count on it.
    monkeypatch.setenv("RECOMMENDER_JOBS", "2")
    parallel.set_jobs(2)
    yield
    parallel.set_jobs(None)


def write_config(folder: Path, users: str | None = None, extra: str = "", database_url: str | None = None) -> Path:
    if users is None:
        users = """
        [[users]]
        email = "ada@example.org"
        name = "Ada"
        """
    database = f'[database]\nurl = "{database_url}"\n' if database_url else ""
    path = folder / "config.toml"
    path.write_text(database + textwrap.dedent(users) + textwrap.dedent(extra), encoding="utf-8")
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def seeds(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "seeds"
    folder.mkdir()
    copies = []
    for seed in SEEDS:
        target = folder / seed.name
        shutil.copy2(seed, target)
        copies.append(target)
    return copies


Invoke = Callable[..., Result]


@pytest.fixture
def run(config_path: Path) -> Invoke:
    """Run the CLI in-process against the test's config; checks the exit code."""

    def invoke(*args: str, code: int = 0, config: Path | None = None, input: str | None = None) -> Result:
        runner = CliRunner()
        result = runner.invoke(cli, ["--config", str(config or config_path), *args], input=input,
                               catch_exceptions=False)
        assert result.exit_code == code, (
            f"exit {result.exit_code} != {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    return invoke


def _postgres_reachable() -> str | None:
    try:
        import psycopg
        import psycopg.sql
    except ImportError:
        return "psycopg is not installed (pip install 'recommender[postgres]')"
    dsn = SERVER_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            if WORKER_DATABASE and not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                                    (WORKER_DATABASE,)).fetchone():
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(WORKER_DATABASE)))
    except Exception as exc:  # any failure to connect (or to create this process's database) means: skip
        return f"no PostgreSQL at {PG_URL}: {str(exc).splitlines()[0]}"
    return None


def _reset_postgres() -> None:
    store = Store.open(PG_URL)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: a SQLite file in tmp_path, and PostgreSQL when reachable."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite'}"
        return
    reason = _postgres_reachable()
    if reason:
        pytest.skip(reason)
    _reset_postgres()
    yield PG_URL


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    opened.upgrade_schema()
    yield opened
    opened.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from smtp_server import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


def smtp_section(port: int, **extra: object) -> str:
    values: dict[str, object] = {"host": "127.0.0.1", "port": port, "security": "none",
                                 "retry_initial_seconds": 0.05, "timeout_seconds": 5}
    values.update(extra)
    lines = ["[smtp]"] + [f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}".replace("'", '"')
                          for key, value in values.items()]
    return "\n".join(lines) + "\n"


def wait_until(condition: Callable[[], object], seconds: float, every: float = 0.1) -> bool:
    """Whether ``condition()`` came true within ``seconds`` (looked at ``every`` seconds)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())


def recommender_command(*args: str) -> list[str]:
    """The installed console script, as a user would run it."""
    import sys

    return [str(Path(sys.executable).with_name("recommender")), *args]
