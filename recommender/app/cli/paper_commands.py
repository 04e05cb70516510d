"""papers list / search / show."""

from __future__ import annotations

import click

from recommender.app.cli.app import AppContext, cli, emit_json, pass_app
from recommender.base.author_names import shortened
from recommender.base.domain import Paper
from recommender.base.text import snippet


def _print_papers(papers: list[Paper], as_json: bool) -> None:
    if as_json:
        emit_json(p.as_json() for p in papers)
        return
    for paper in (p.display for p in papers):
        click.echo(f"{paper.id}\t{paper.title or snippet(paper.abstract, 80)}")


@cli.group()
def papers() -> None:
    """Browse stored papers."""


@papers.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per paper.")
@pass_app
def papers_list(app: AppContext, as_json: bool) -> None:
    """List every stored paper (id and title), oldest first.

    Example:

    \b
      recommender papers list --json
    """
    _print_papers(app.api.papers(), as_json)


@papers.command("search")
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per paper.")
@pass_app
def papers_search(app: AppContext, query: str, as_json: bool) -> None:
    """Find papers whose title or abstract contains every word of QUERY.

    Example:

    \b
      recommender papers search "optimal transport"
    """
    found = app.api.search_papers(query)
    _print_papers(found, as_json)
    if not as_json and not found:
        click.echo(f"no paper matches {query!r}", err=True)


@papers.command("show")
@click.argument("paper_id")
@click.option("--json", "as_json", is_flag=True, help="Print the paper as one JSON object.")
@pass_app
def papers_show(app: AppContext, paper_id: str, as_json: bool) -> None:
    """Show one paper in full.

    Example:

    \b
      recommender papers show 2412.00420
    """
    paper = app.api.paper(paper_id).display
    if as_json:
        emit_json([paper.as_json()])
        return
    click.echo(f"id:       {paper.id}")
    click.echo(f"title:    {paper.title}")
    if paper.authors:
        click.echo(f"authors:  {shortened(paper.authors)}")
    if paper.arxiv_id:
        click.echo(f"arxiv:    {paper.arxiv_id}")
    if paper.category:
        click.echo(f"category: {paper.category}")
    if paper.url:
        click.echo(f"url:      {paper.url}")
    click.echo("")
    click.echo(paper.abstract)
