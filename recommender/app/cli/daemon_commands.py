"""run, warm, fetch, schedule list."""

from __future__ import annotations

import click

from recommender.app.cli.app import AppContext, cli, emit_json, pass_app, run_command, summary


@cli.command()
@click.option("--standby", is_flag=True,
              help="On PostgreSQL, wait while another daemon runs on the database and take over when it stops.")
@pass_app
def run(app: AppContext, standby: bool) -> None:
    """Run the daemon: fetch sources and mail each subscriber at their send_at.

    Logs its start, users' next digest times, each run's line per user (as
    `digest send` prints them) and its stop on stderr. One daemon per database:
    a second one is refused, or with --standby (PostgreSQL) waits and takes over
    when the first stops or dies. SIGHUP reloads the config; SIGTERM or Ctrl-C
    stops it cleanly. With [delivery] mode = "queue" it only says who is due:
    `recommender worker` processes build and send their digests.

    Example:

    \b
      recommender --config /etc/recommender/config.toml run
    """
    from recommender.app import runtime
    from recommender.app.daemon import Daemon

    run_log_level = runtime.log_daemon_to_stderr()
    app.api.store  # noqa: B018 - refuses an uninitialised or newer database before starting
    Daemon(app.config.path, app.database_url, run_log_level=run_log_level, standby=standby).run_forever()


@cli.command()
@pass_app
def warm(app: AppContext) -> None:
    """Keep models loaded so `recommend` answers in a fraction of the time.

    While it runs, `recommend` with the same config (and --database-url)
    is handed to it over a private Unix socket and writes straight to your
    terminal: no start-up, no model loading. Results are the same as
    without it: papers, stars and feedback are read afresh on every request,
    and a model is reloaded when an ingest refits it. SIGTERM or Ctrl-C stops it.

    Example:

    \b
      recommender --config config.toml warm &
      recommender --config config.toml recommend --limit 5
    """
    from recommender.app.warm_server import WarmServer

    app.api.store  # noqa: B018 - refuses an uninitialised or newer database before starting
    WarmServer(app.config.path, app.database_url, run_command).serve(ready=lambda: summary("warm: ready"))


@cli.command()
@click.option("--source", "names", multiple=True, metavar="NAME", help="Only this source (repeatable).")
@pass_app
def fetch(app: AppContext, names: tuple[str, ...]) -> None:
    """Pull the configured sources now (folders and web feeds), as one ingest run.

    Example:

    \b
      recommender fetch
      recommender fetch --source arxiv-lg
    """
    app.readers_from_database()
    outcomes = app.api.fetch(names, log_outcomes=False)  # printed below, once
    for outcome in outcomes:
        click.echo(outcome.line())
    failed = sum(o.status == "failed" for o in outcomes)
    summary(f"fetched {len(outcomes)} source(s): {sum(o.new_papers for o in outcomes)} new papers, {failed} failed")
    if failed:
        raise SystemExit(1)


@cli.group("schedule")
def schedule_group() -> None:
    """When digests go out."""


@schedule_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
@pass_app
def schedule_list(app: AppContext, as_json: bool) -> None:
    """Show each user's next digest time, as the daemon schedules it (before any daemon ran too).

    Example:

    \b
      recommender schedule list --json
    """
    rows = app.api.next_digests()
    if as_json:
        emit_json({"user": u.email, "next_run": when.isoformat(), "kind": kind, "timezone": u.timezone}
                  for u, when, kind in rows)
        return
    for user, when, kind in rows:
        click.echo(f"{user.email}\t{when.isoformat()}\t{kind}")


@cli.command()
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256),
              help="SMTP connections (digests in flight) of this worker.")
@click.option("--once", is_flag=True, help="Exit when the queue is empty instead of waiting for more.")
@click.option("--poll", "poll_seconds", default=1.0, show_default=True, type=click.FloatRange(0.05, 600),
              help="Seconds between looks at an empty queue.")
@click.option("--lease", "lease_seconds", default=600, show_default=True, type=click.IntRange(5, 86400),
              help="How long a claimed digest is this worker's before another may take it.")
@click.option("--shard", "shard_readers", default=1000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Due readers whose digests this worker builds per claim.")
@pass_app
def worker(app: AppContext, concurrency: int, once: bool, poll_seconds: float, lease_seconds: int,
           shard_readers: int) -> None:
    """Build the digests of due readers and send queued digests from the shared outbox; run any
    number of workers on any hosts.

    Pairs with `recommender run` and [delivery] mode = "queue": the daemon says who is due, the
    workers claim them in shards, rank, render, store and send. A worker killed mid-shard
    loses nothing (its shard is claimed again and no reader gets two digests); one killed
    mid-send neither: its digests are taken over by another worker (at once on the same host,
    after the lease elsewhere) and re-sent with the same Message-ID.

    Example:

    \b
      recommender worker --concurrency 8
    """
    import signal
    import threading
    from datetime import timedelta

    app.readers = False  # each shard's readers come from the database: memory flat in their number
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sent = app.api.work(concurrency, once, stop, poll_seconds, timedelta(seconds=lease_seconds), shard_readers)
    summary(f"worker sent {sent} digest(s)")
