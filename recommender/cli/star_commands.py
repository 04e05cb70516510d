"""star, unstar, stars (list, import), import-bibtex."""

from __future__ import annotations

import click

from recommender import library, pipeline
from recommender.cli.app import AppContext, cli, emit_json, existing_path, pass_app, summary
from recommender.matching import paper_by_title


@cli.command()
@click.argument("paper_ids", nargs=-1, metavar="[ID]...")
@click.option("--title", "titles", multiple=True, metavar="TEXT",
              help="Star by title: the exact title, else the single best fuzzy match (repeatable).")
@click.option("--from-config", is_flag=True, help="Star the papers listed in the user's `stars` key.")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@pass_app
def star(app: AppContext, paper_ids: tuple[str, ...], titles: tuple[str, ...], from_config: bool,
         email: str | None) -> None:
    """Star papers you liked, by id or by title; your profile is built from them.

    Example:

    \b
      recommender star 2412.00420
      recommender star --title "TAROT: Targeted Data Selection via Optimal Transport"
    """
    store = app.store
    users = app.users(email, all_users=from_config and not email)
    for user in users:
        wanted = list(paper_ids) + list(user.stars if from_config else ())
        ids = library.resolve_references(store, wanted) + [paper_by_title(store, t).id for t in titles]
        if not ids:
            raise click.UsageError("give paper ids, --title TEXT, or --from-config")
        added = store.star(store.user_id(user.email), ids)
        for paper in store.papers(ids):
            click.echo(f"starred {paper.id}\t{paper.title}")
        summary(f"{user.email}: {added} new star(s), {len(set(ids)) - added} already starred")


@cli.command()
@click.argument("paper_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@pass_app
def unstar(app: AppContext, paper_ids: tuple[str, ...], email: str | None) -> None:
    """Remove stars.

    Example:

    \b
      recommender unstar 2412.00420
    """
    store = app.store
    user = app.user(email)
    removed = store.unstar(store.user_id(user.email), list(paper_ids))
    summary(f"{user.email}: removed {removed} star(s)")


@cli.group(invoke_without_command=True)
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per starred paper.")
@click.pass_context
def stars(ctx: click.Context, email: str | None, as_json: bool) -> None:
    """List your starred papers (or import many with `stars import`).

    Example:

    \b
      recommender stars --json
      recommender stars import library.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(AppContext)
    assert app is not None  # nosec B101  # a type narrowing for mypy; click always passes the context
    store = app.store
    user = app.user(email)
    starred = store.stars(store.user_id(user.email))
    if as_json:
        emit_json(dict(p.as_json(), user=user.email, starred_at=at.isoformat()) for p, at in starred)
        return
    for paper, at in starred:
        click.echo(f"{paper.id}\t{at:%Y-%m-%d}\t{paper.title}")
    summary(f"{user.email}: {len(starred)} star(s)")


@stars.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--skip-unknown", is_flag=True, help="Import the known papers and report the unknown ones.")
@pass_app
def stars_import(app: AppContext, file: str, skip_unknown: bool) -> None:
    """Bulk-star from a CSV (header `user,paper_id`) or JSONL file, in one transaction.

    Unknown users or paper ids are reported by line; without --skip-unknown nothing is
    imported when any line is bad.

    Example:

    \b
      recommender stars import exported.csv
    """
    result = library.import_stars(app.store, app.config, existing_path(file), skip_unknown)
    if result.added:
        pipeline.refresh(app.store, app.config)
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    summary(f"imported {result.added} new star(s) from {result.lines} line(s)"
            + (f", skipped {len(result.problems)}" if result.problems else ""))


@cli.command("import-bibtex")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@pass_app
def import_bibtex(app: AppContext, file: str, email: str | None) -> None:
    """Star the papers of a BibTeX / Zotero export, matched by arXiv id or title; entries not
    yet stored are added as papers first (not as new digest entries).

    Example:

    \b
      recommender import-bibtex ~/Zotero/export.bib
    """
    user = app.user(email)
    result = library.import_bibtex(app.store, user.email, existing_path(file))
    summary(f"{user.email}: {result.entries} entries, {result.matched} matched stored papers, "
            f"{result.added_papers} added as new papers, {result.new_stars} new star(s)")
