"""init, config check, ingest, batches, recommend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import click

from recommender.app.cli.app import AppContext, cli, emit, emit_json, pass_app, summary, topic_named
from recommender.base.config import ConfigErrors, UserConfig, config_warnings, masked_url
from recommender.base.domain import Recommendation
from recommender.base.errors import RecommenderError
from recommender.base.formats import DIGEST_FORMATS


@cli.command()
@pass_app
def init(app: AppContext) -> None:
    """Create the database, or upgrade it to the newest schema (safe to run again).

    Example:

    \b
      recommender --config config.toml init
    """
    done = app.api.init()
    click.echo(f"database {done.state} (schema {done.schema}): {done.database}")
    for path in done.tightened:
        click.echo(f"made owner-only: {path}")


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@pass_app
def config_check(app: AppContext) -> None:
    """Validate the config file: every error (exit 2) and warning (exit 0) in one run.

    Example:

    \b
      recommender --config config.toml config check
    """
    try:
        config = app.config
    except ConfigErrors as exc:
        for error in exc.errors:
            click.echo(f"Error: {error}", err=True)
        summary(f"{len(exc.errors)} error(s)")
        raise SystemExit(2) from None
    click.echo(f"{config.path}: OK: {len(config.users)} user(s), {len(config.sources)} source(s), "
               f"database {masked_url(config.database.url)}")
    for warning in config_warnings(config):
        click.echo(f"warning: {warning}")
    try:
        failing = app.api.failing_sources()
    except RecommenderError:  # no database yet: nothing has been fetched
        failing = []
    for warning in failing:
        click.echo(f"warning: {warning}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(("auto", *DIGEST_FORMATS)), default="auto", show_default=True,
              help="Input format; auto detects it from the content.")
@click.option("--date", "batch_date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Date of the digest (YYYY-MM-DD); gives the year of a trending page's 'Mar 11'.")
@pass_app
def ingest(app: AppContext, paths: tuple[str, ...], fmt: str, batch_date: object) -> None:
    """Store digest files, each as one batch of new papers. Re-ingesting a file adds nothing.

    A trending page's date line has no year: it comes from --date, else it is the most
    recent such date not after the file's modification time.

    Example:

    \b
      recommender ingest seeds/*.txt
      recommender ingest --format jsonl --date 2025-03-11 papers.jsonl
    """
    app.readers_from_database()
    day: date | None = batch_date.date() if batch_date is not None else None  # type: ignore[attr-defined]
    task = app.progress.add_task("parsing", total=len(paths))
    result = app.api.ingest(paths, fmt, day, on_file=lambda n: app.progress.advance(task, n))
    summary(result.line())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def batches(app: AppContext, as_json: bool) -> None:
    """List stored digest batches (ids for --batch).

    Example:

    \b
      recommender batches --json
    """
    rows = app.api.batches()
    if as_json:
        emit_json({"id": b.id, "source": b.source, "format": b.format, "date": b.batch_date,
                   "entries": b.entry_count, "ingest_run": b.ingest_run, "created_at": b.created_at.isoformat()}
                  for b in rows)
        return
    for b in rows:
        click.echo(f"{b.id}\t{b.batch_date or '-'}\t{b.entry_count} entries\t{b.source}")


@cli.command()
@click.option("--user", "email", metavar="EMAIL", help="The user to rank for (default: the only one).")
@click.option("--all-users", is_flag=True, help="Rank for every configured user.")
@click.option("--batch", "batch_spec", default="latest", show_default=True,
              help="latest (the most recent ingest run), all, or a batch id.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="How many papers per user (default: the user's max_items).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per recommendation.")
@click.option("--topic", "topic", metavar="NAME", help="Only this topic's picks ([[users.topics]]).")
@pass_app
def recommend(app: AppContext, email: str | None, all_users: bool, batch_spec: str, limit: int | None,
              as_json: bool, topic: str | None) -> None:
    """Rank new papers for a user, best first, each with why it was picked. A user with
    topics gets each topic's picks under its name.

    Example:

    \b
      recommender recommend --limit 5
      recommender recommend --topic folding
      recommender recommend --all-users --batch all --json
    """
    if email and all_users:
        raise click.UsageError("give --user or --all-users, not both")
    users = app.users(email, all_users)
    if topic is not None:
        if len(users) > 1:
            raise click.UsageError("--topic is for one user: give --user")
        topic = topic_named(users[0], topic)

    def render(part: Sequence[UserConfig], results: dict[str, list[Recommendation]]) -> str:
        picks = [results[user.email] for user in part]
        if as_json:
            return "".join([r.as_json_line() + "\n" for user_picks in picks for r in user_picks])
        lines = []
        for user, user_picks in zip(part, picks, strict=True):
            if len(users) > 1:
                lines.append(f"== {user.email}")
            for n, r in enumerate(user_picks):
                if r.topic and (n == 0 or user_picks[n - 1].topic != r.topic):
                    lines.append(f"# {r.topic}")
                match = f"[{r.match:3d}% match] " if r.explanation.personalized else ""
                lines.append(f"{r.rank:2d}. {match}{r.paper.display.title}  ({r.paper.id})")
                lines.append(f"    why: {r.explanation.sentence()}")
            if not user_picks:
                lines.append("nothing new to recommend")
        return "".join(line + "\n" for line in lines)

    count = app.api.recommend_written([user.email for user in users], limit, batch_spec, render, emit, topic)
    if count is None:
        click.echo("no new papers to rank yet: get some with `recommender fetch` (the [[sources]] of the config) "
                   "or `recommender ingest FILE`", err=as_json)  # (--json: stdout stays JSON lines)
        return
    summary(f"ranked {count} recommendation(s) for {len(users)} user(s)")


@cli.command()
@click.argument("paper_id")
@click.option("--user", "email", metavar="EMAIL", help="For whom (default: the only user).")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as one JSON object.")
@pass_app
def explain(app: AppContext, paper_id: str, email: str | None, as_json: bool) -> None:
    """Show how a paper's score for you is made up: content and collaborative parts, the
    starred papers nearest to it and the terms they share, with their contributions.

    Example:

    \b
      recommender explain 2412.00420
    """
    breakdown = app.api.explain(app.user(email).email, paper_id).as_json()
    if as_json:
        emit_json([breakdown])
        return
    click.echo(f"{breakdown['title']}  ({breakdown['paper_id']})")
    if breakdown.get("topic"):
        click.echo(f"topic: {breakdown['topic']} (the topic where it ranks best)")
    # The parts that are not zero (a zero part is no part of this score).
    parts = [f"{name} {breakdown[name]:.4f}" for name in ("content", "topics", "collaborative", "interests")
             if breakdown[name] or name == "content"]
    # A reader's own classifier scores most papers below 0: said, so that a negative raw score
    # beside a high match reads as what it is.
    below = "  (raw: your classifier scores most papers below 0; only their order counts)" \
        if breakdown["score"] < 0 else ""
    click.echo(f"score {breakdown['score']:.4f} = " + " + ".join(parts) + below)
    if breakdown["match"] is not None:
        click.echo(f"match {breakdown['match']}%: above {breakdown['match']}% of your other papers in the latest batch")
    for note in breakdown["notes"]:
        click.echo(f"note: {note}")
    for near in breakdown["nearest"]:
        which = "a paper you liked" if near["kind"] == "liked" else "your starred paper"
        click.echo(f"near {which} ({near['similarity']:.3f}): {near['title']}  ({near['paper_id']})")
    for term in breakdown["terms"]:
        click.echo(f"  shared term {term['term']!r}: {term['contribution']:.4f}")
    click.echo(f"why: {breakdown['why']}")
