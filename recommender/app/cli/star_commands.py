"""star, unstar, stars (list, import), import-library (import-bibtex)."""

from __future__ import annotations

import click

from recommender.app.cli.app import AppContext, cli, emit_json, pass_app, summary, topic_named
from recommender.base.config_topics import config_block
from recommender.base.formats import LIBRARY_FORMATS, TOPICS_FROM


@cli.command()
@click.argument("paper_ids", nargs=-1, metavar="[ID]...")
@click.option("--title", "titles", multiple=True, metavar="TEXT",
              help="Star by title: the exact title, else the single best fuzzy match (repeatable).")
@click.option("--from-config", is_flag=True, help="Star the papers listed in the user's `stars` key.")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--offline", is_flag=True, help="Never ask the arXiv API for a paper that is not stored.")
@click.option("--topic", metavar="NAME", help="The topic ([[users.topics]]) the stars belong to (moves starred ones).")
@pass_app
def star(app: AppContext, paper_ids: tuple[str, ...], titles: tuple[str, ...], from_config: bool,
         email: str | None, offline: bool, topic: str | None) -> None:
    """Star papers you liked, by id, arXiv id or title; your profile is built from them.

    An arXiv id may be written any usual way (1706.03762, arXiv:1706.03762v5, an arxiv.org
    abs or pdf URL, the 10.48550/arXiv DOI, hep-th/9901001). A paper not stored yet is looked
    up on the arXiv API, stored and starred.

    Example:

    \b
      recommender star 1706.03762
      recommender star --title "TAROT: Targeted Data Selection via Optimal Transport"
      recommender star --topic folding 2401.01234
    """
    for user in app.users(email, all_users=from_config and not email):
        if not (paper_ids or titles or (from_config and user.stars)):
            raise click.UsageError("give paper ids, --title TEXT, or --from-config")
        named = topic_named(user, topic)
        starred = app.api.star(user.email, paper_ids, titles, from_config, offline, named)
        for paper in starred.papers:
            click.echo(f"starred {paper.id}\t{paper.display.title}" + (f"\t[{named}]" if named else ""))
        summary(f"{user.email}: {starred.added} new star(s), {starred.already} already starred")


@cli.command()
@click.argument("paper_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--topic", metavar="NAME", help="Only stars in this topic.")
@pass_app
def unstar(app: AppContext, paper_ids: tuple[str, ...], email: str | None, topic: str | None) -> None:
    """Remove stars.

    Example:

    \b
      recommender unstar 2412.00420
      recommender unstar --topic folding 2401.01234
    """
    user = app.user(email)
    removed = app.api.unstar(user.email, paper_ids, topic_named(user, topic))
    summary(f"{user.email}: removed {removed} star(s)")


@cli.group(invoke_without_command=True)
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per starred paper.")
@click.option("--topic", metavar="NAME", help="Only stars in this topic.")
@click.pass_context
def stars(ctx: click.Context, email: str | None, as_json: bool, topic: str | None) -> None:
    """List your starred papers (or import many with `stars import`).

    Example:

    \b
      recommender stars --json
      recommender stars --topic folding
      recommender stars import library.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(AppContext)
    assert app is not None  # nosec B101  # a type narrowing for mypy; click always passes the context
    user = app.user(email)
    named = topic_named(user, topic)
    starred = app.api.stars(user.email, named)
    if as_json:
        emit_json(dict(one.paper.as_json(), user=user.email, starred_at=one.starred_at.isoformat(), topic=one.topic)
                  for one in starred)
        return
    for one in starred:
        click.echo(f"{one.paper.id}	{one.starred_at:%Y-%m-%d}	{one.paper.title}" + (f"	[{one.topic}]" if one.topic else ""))
    summary(f"{user.email}: {len(starred)} star(s)" + (f" in topic {named!r}" if named else ""))


@stars.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--skip-unknown", is_flag=True, help="Import the known papers and report the unknown ones.")
@click.option("--offline", is_flag=True, help="Never ask the arXiv API for a paper that is not stored.")
@pass_app
def stars_import(app: AppContext, file: str, skip_unknown: bool, offline: bool) -> None:
    """Bulk-star from a CSV (header `user,paper_id`) or JSONL file, in one transaction.

    A paper may be named by its id or by an arXiv id in any usual form; one not stored yet is
    looked up on the arXiv API. Unknown users or papers are reported by line; without
    --skip-unknown nothing is imported when any line is bad.

    Example:

    \b
      recommender stars import exported.csv
    """
    result = app.api.import_stars(file, skip_unknown, offline)
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    summary(f"imported {result.added} new star(s) from {result.lines} line(s)"
            + (f", skipped {len(result.problems)}" if result.problems else ""))


@cli.command("import-library")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="FILE...")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--format", "fmt", type=click.Choice(("auto", *LIBRARY_FORMATS)), default="auto", show_default=True,
              help="The files' format; auto detects BibTeX, Zotero CSV, RIS and Better BibTeX JSON from the content.")
@click.option("--strict", is_flag=True, help="Refuse the files when any entry cannot be read.")
@click.option("--offline", is_flag=True, help="Never ask the arXiv API for missing abstracts.")
@click.option("--topic", metavar="NAME", help="Star the papers in this topic ([[users.topics]]).")
@click.option("--topics-from", "topics_from", type=click.Choice(tuple(TOPICS_FROM)),
              help="Each paper's topic from the library: its collections/groups (Better BibTeX collections and "
                   "JabRef groups, Mendeley tags, Zotero CSV manual tags) or its keywords (BibTeX/RIS keywords, "
                   "Mendeley and Zotero tags).")
@pass_app
def import_library(app: AppContext, files: tuple[str, ...], email: str | None, fmt: str, strict: bool,
                   offline: bool, topic: str | None = None, topics_from: str | None = None) -> None:
    """Star the papers of your reference manager's export: BibTeX (Zotero, Better BibTeX,
    JabRef, Mendeley, BibDesk, ...), a Zotero CSV export, RIS, or Better BibTeX JSON. Papers are matched to stored
    ones by arXiv id, then title; the others are added (not as new digest entries). Entries
    with an arXiv id but no abstract get theirs from arXiv. An entry that cannot be read is
    skipped with its line and the reason. With --topics-from, each star takes one of the
    folders or keywords the library gives its paper (a configured topic's first, else the one
    most papers share); the ones not configured yet are printed as a [[users.topics]] block.

    Example:

    \b
      recommender import-library ~/Zotero/export.bib
      recommender import-library library.csv papers.ris --strict
      recommender import-library --topic folding folding.bib
      recommender import-library --topics-from groups jabref.bib
    """
    user = app.user(email)
    task = app.progress.add_task("reading the library" + ("" if offline else ", looking up arXiv ids"), total=None)
    result = app.api.import_library(user.email, files, fmt, strict, offline,
                                    progress=lambda n: app.progress.advance(task, n), topic=topic_named(user, topic),
                                    topics_from=topics_from)
    for line in result.skipped:
        click.echo(f"warning: {line}", err=True)
    for unknown in result.unknown:
        click.echo(f"warning: arXiv has no paper {unknown!r}; kept as the file had it", err=True)
    if result.lookup_failed:
        click.echo(f"warning: arXiv lookup failed ({result.lookup_failed}); entries kept as the files had them",
                   err=True)
    new = [(name, [f"{count} paper(s) of the library"]) for name, count in result.topics.items()
           if user.topic(name) is None]
    if new:
        click.echo(f"# topics found in the library: add them under {user.email}'s [[users]] entry")
        click.echo(config_block(new))
    if result.titles_only_note():
        click.echo(f"note: {result.titles_only_note()}", err=True)
    summary(f"{user.email}: {result.line()}"
            + (f"; topics: {', '.join(f'{n} ({c})' for n, c in result.topics.items())}" if result.topics else ""))


@cli.command("import-bibtex")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="FILE...")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--strict", is_flag=True, help="Refuse the files when any entry cannot be read.")
@click.option("--offline", is_flag=True, help="Never ask the arXiv API for missing abstracts.")
@click.pass_context
def import_bibtex(ctx: click.Context, files: tuple[str, ...], email: str | None, strict: bool, offline: bool) -> None:
    """`import-library --format bibtex`: star the papers of a BibTeX export.

    Example:

    \b
      recommender import-bibtex ~/Zotero/export.bib
    """
    ctx.invoke(import_library, files=files, email=email, fmt="bibtex", strict=strict, offline=offline)
