"""The root command group, the shared context, and turning our errors into clean exits."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from recommender.app import runtime
from recommender.base.config import (
    CONFIG_ENV,
    DATABASE_URL_ENV,
    Config,
    UserConfig,
    find_config_path,
    listed_emails,
    load_config,
)
from recommender.base.env_names import JOBS_ENV
from recommender.base.errors import ConfigError, RecommenderError
from recommender.base.version import __version__

if TYPE_CHECKING:
    from recommender.pipeline.api import Database, Recommender


class AppContext:
    """Built once per command: the config and the install's API, opened on first use."""

    def __init__(self, config_option: str | None, database_url: str | None,
                 kept_databases: dict[str, Database] | None = None):
        self.config_option = config_option
        self.database_url = database_url
        # Given by `recommender warm`: databases (with their models) that outlive this command.
        self.kept_databases = kept_databases
        self._readers_task: Any = None
        self.readers = True  # False: the config's [[users]] are not read (a worker reads them from the database)

    @cached_property
    def config(self) -> Config:
        return load_config(find_config_path(self.config_option), self.database_url, readers=self.readers)

    def readers_from_database(self) -> None:
        """For a command that only refits (`ingest`, `fetch`): on PostgreSQL its readers are
        the database's, as a worker's (their settings as `init`, `run` and SIGHUP stored them;
        the config file's when none are stored), so it neither parses nor holds every
        ``[[users]]`` table (5.7 s and 124 MB for 100,000 readers)."""
        shared = load_config(find_config_path(self.config_option), self.database_url, readers=False)
        if not shared.database.url.startswith("sqlite"):
            self.readers = False
            self.__dict__["config"] = shared  # (the cached property's value)

    @cached_property
    def api(self) -> Recommender:
        """The install's Python API over this command's config (and the kept database)."""
        from recommender.pipeline.api import Recommender

        database = None
        if self.kept_databases is not None:
            url = self.config.database.url
            if url not in self.kept_databases:
                self.kept_databases[url] = Recommender.open_database(url, keep_models=True)
            database = self.kept_databases[url]
        return Recommender(self.config, database, on_refit=self.on_refit)

    @cached_property
    def progress(self) -> Progress:
        """The command's progress bars on stderr (quiet when stderr is not a terminal)."""
        return progress_bar().__enter__()

    def on_refit(self, done: int, total: int) -> None:
        """A bar while readers' own classifiers are fitted after a change."""
        if self._readers_task is None:
            self._readers_task = self.progress.add_task("fitting readers' classifiers", total=total)
        self.progress.update(self._readers_task, completed=done)

    def close(self) -> None:
        if "progress" in self.__dict__:
            self.progress.__exit__(None, None, None)
        if "api" in self.__dict__:
            self.api.close()

    def users(self, email: str | None, all_users: bool = False) -> list[UserConfig]:
        """The users a command acts for: --user, everyone, or the single configured one."""
        configured = list(self.config.users)
        if not configured:
            raise ConfigError(f"{self.config.path}: no [[users]] configured; add one with an email")
        if email:
            return [self.config.user(email)]
        if all_users or len(configured) == 1:
            return configured
        raise click.UsageError(f"several users are configured; choose one with --user EMAIL "
                               f"({listed_emails(configured)})")

    def user(self, email: str | None) -> UserConfig:
        return self.users(email)[0]


pass_app = click.make_pass_decorator(AppContext)


class RecommenderGroup(click.Group):
    """Turns RecommenderError and database errors into ``Error: ...`` and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RecommenderError as exc:
            fail(str(exc), exc.exit_code)
        except SQLAlchemyError as exc:
            origin = getattr(exc, "orig", None) or exc
            app = ctx.find_object(AppContext)
            fail(f"database error: {_without_password(str(origin).splitlines()[0], app)}", 1)
        except KeyboardInterrupt:
            # Each write is a transaction: what was stored before the interrupt stays, whole.
            fail("interrupted: what was stored before it is kept (each step is stored whole or not at all); "
                 "models it left stale are refit by the next command that ranks", 130)
        finally:
            app = ctx.find_object(AppContext)
            if app is not None:
                app.close()


def _without_password(message: str, app: AppContext | None) -> str:
    """The message with the database password, wherever it appears, replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        url = app.config.database.url if app is not None else ""
        password = make_url(url).password if url else None
    except (RecommenderError, SQLAlchemyError, ValueError):
        return message
    return message.replace(str(password), "***") if password else message


def topic_named(user: UserConfig, name: str | None) -> str | None:
    """The config's spelling of ``user``'s topic ``name`` (None for None); a usage error names
    the topics there are."""
    if name is None:
        return None
    topic = user.topic(name)
    if topic is None:
        there = ", ".join(repr(t.name) for t in user.topics) or "none: add [[users.topics]] to the config"
        raise click.UsageError(f"{user.email} has no topic {name!r} (topics: {there})")
    return topic.name


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.group(cls=RecommenderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar=CONFIG_ENV, metavar="PATH",
              help="Config file (default: $RECOMMENDER_CONFIG, else ./config.toml).")
@click.option("--database-url", envvar=DATABASE_URL_ENV, metavar="URL",
              help="Override [database].url (also $RECOMMENDER_DATABASE_URL).")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), envvar=JOBS_ENV, metavar="N",
              help="Worker processes a command may use (default: one per core; also $RECOMMENDER_JOBS).")
@click.version_option(__version__, prog_name="recommender")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, database_url: str | None, verbose: int, jobs: int | None) -> None:
    """Personalized research-paper recommender: ingest digests, star papers, get the few new
    papers you will want to read.

    Example:

    \b
      recommender --config config.toml ingest seeds/*.txt
      recommender --config config.toml recommend --limit 5
    """
    runtime.log_to_stderr(max(logging.WARNING - 10 * verbose, logging.DEBUG))
    runtime.set_jobs(jobs)
    ctx.obj = AppContext(config_path, database_url, ctx.obj)  # ctx.obj: run_command's kept_databases


def run_command(args: list[str] | None = None, kept_databases: dict[str, Database] | None = None) -> object:
    """Run one command line (``sys.argv`` when ``args`` is None); returns its exit status."""
    try:
        cli.main(args, prog_name="recommender", obj=kept_databases)
    except SystemExit as exc:
        return exc.code
    return 0


def main() -> None:
    runtime.tune_collector()
    code = run_command()
    runtime.exit_now(code)
    sys.exit(str(code))  # a message instead of a status: printed by the normal exit


# -- output helpers shared by the command modules -----------------------------------------
def stderr_console() -> Console:
    return Console(stderr=True)


def progress_bar() -> Progress:
    """A progress bar on stderr (quiet when stderr is not a terminal)."""
    console = stderr_console()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


def json_lines(records: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line."""
    return "".join([json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records])


def emit_json(records: Iterable[dict[str, Any]]) -> None:
    """``json_lines`` written in one call."""
    emit(json_lines(records))


def emit(text: str) -> None:
    """Text that holds its own line ends, written in one call. ``color=True`` skips click's
    scan for ANSI codes to strip: our output has none (JSON escapes every control character)."""
    if text:
        click.echo(text, nl=False, color=True)


def summary(line: str) -> None:
    click.echo(line, err=True)


def existing_path(value: str) -> Path:
    return Path(value).expanduser()
