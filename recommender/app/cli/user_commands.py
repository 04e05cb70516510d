"""serve, feedback list, profile show, users list / feed-url / resubscribe / export / forget."""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import Any

import click
import numpy as np

from recommender import pipeline
from recommender.app.cli.app import AppContext, cli, emit_json, fail, pass_app, summary, topic_named
from recommender.base.link_signing import check_secret
from recommender.pipeline import topics
from recommender.pipeline.store_access import FeedbackLog


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@pass_app
def serve(app: AppContext, host: str, port: int, workers: int) -> None:
    """Serve the feedback endpoint (links in the emails) with uvicorn; stops cleanly on SIGTERM.

    In production put it behind a reverse proxy with HTTPS and set [feedback].base_url
    to the public address.

    Example:

    \b
      recommender serve --host 127.0.0.1 --port 8080
    """
    from recommender.pipeline import serving

    config = app.config
    check_secret(config.feedback.secret, config.feedback.secret_env)
    store = app.store  # checks the schema before binding the port
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was there before; this one lets the command end normally (exit 0) after that.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    serving.serve(config, store, host, port, workers)


@cli.group("feedback")
def feedback_group() -> None:
    """Inspect recorded feedback clicks."""


@feedback_group.command("list")
@click.option("--user", "email", metavar="EMAIL", help="Only this user's clicks (default: everyone's).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@pass_app
def feedback_list(app: AppContext, email: str | None, as_json: bool) -> None:
    """List recorded feedback events (more, less, open), oldest first.

    Example:

    \b
      recommender feedback list --user ada@example.org --json
    """
    store = app.store
    user_id = store.user_id(app.config.user(email).email) if email else None
    events = FeedbackLog(store).events(user_id)
    if as_json:
        emit_json(e.as_json() for e in events)
        return
    for e in events:
        click.echo(f"{e.created_at:%Y-%m-%d %H:%M}\t{e.email}\t{e.action}\t{e.paper_id}\t{e.title}")
    summary(f"{len(events)} event(s)")


@cli.group("profile")
def profile_group() -> None:
    """Inspect user profiles."""


@profile_group.command("show")
@click.option("--user", "email", metavar="EMAIL", help="Whose profile (default: the only user).")
@click.option("--terms", "n_terms", default=15, show_default=True, type=click.IntRange(1, 500),
              help="How many terms of each sign.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as one JSON object.")
@click.option("--topic", metavar="NAME", help="The profile of this topic ([[users.topics]]).")
@pass_app
def profile_show(app: AppContext, email: str | None, n_terms: int, as_json: bool, topic: str | None) -> None:
    """Show the top positive and negative terms of a profile and the papers that shaped them.

    Example:

    \b
      recommender profile show --json
      recommender profile show --topic folding
    """
    store = app.store
    user = app.user(email)
    profile, terms = pipeline.profile(app.config, store, user, topic_named(user, topic))
    order = np.argsort(-profile.vector, kind="stable")
    positive = [(str(terms[i]), float(profile.vector[i])) for i in order[:n_terms] if profile.vector[i] > 0]
    negative = [(str(terms[i]), float(profile.vector[i])) for i in order[::-1][:n_terms] if profile.vector[i] < 0]
    papers = store.titles(profile.positives + profile.negatives)
    record: dict[str, Any] = {
        "user": user.email,
        "positive_terms": [{"term": t, "weight": round(w, 4)} for t, w in positive],
        "negative_terms": [{"term": t, "weight": round(w, 4)} for t, w in negative],
        "papers": [{"paper_id": p, "title": papers.get(p, ""), "pull": "positive"} for p in profile.positives]
        + [{"paper_id": p, "title": papers.get(p, ""), "pull": "negative"} for p in profile.negatives],
        "interests": list(profile.interests),
    }
    if as_json:
        emit_json([record])
        return
    click.echo(f"profile of {user.email}" + ("" if not profile.empty else " (empty: star papers to build it)"))
    click.echo("more of: " + ", ".join(f"{t} ({w:.2f})" for t, w in positive))
    if negative:
        click.echo("less of: " + ", ".join(f"{t} ({w:.2f})" for t, w in negative))
    for paper in record["papers"]:
        sign = "+" if paper["pull"] == "positive" else "-"
        click.echo(f"  {sign} {paper['paper_id']}\t{paper['title']}")
    if profile.interests:
        click.echo("interests: " + ", ".join(profile.interests))


@profile_group.command("topics")
@click.option("--user", "email", metavar="EMAIL", help="Whose stars (default: the only user).")
@click.option("--suggest", is_flag=True, help="Split the stars into coherent groups and print them as topics.")
@click.option("--max", "max_k", default=4, show_default=True, type=click.IntRange(2, 20),
              help="At most this many suggested topics.")
@click.option("--apply", "apply", is_flag=True, help="Also put each star in its suggested topic.")
@pass_app
def profile_topics(app: AppContext, email: str | None, suggest: bool, max_k: int, apply: bool) -> None:
    """List your topics and how many stars each has; with --suggest, split your stars into at
    most --max coherent groups, each named by its most telling terms and shown with its
    papers, as a [[users.topics]] block to paste into the config (--apply files the stars).

    Example:

    \b
      recommender profile topics
      recommender profile topics --suggest --max 3 >> topics.toml
    """
    store = app.store
    user = app.user(email)
    if apply and not suggest:
        raise click.UsageError("--apply goes with --suggest")
    if not suggest:
        counts = Counter(t.lower() for _, t in store.star_topics(store.user_id(user.email)).items())
        for topic in user.topics:
            click.echo(f"{topic.name}\t{counts.get(topic.name.lower(), 0)} star(s)")
        summary(f"{user.email}: {len(user.topics)} topic(s)")
        return
    found = pipeline.suggest_topics(app.config, store, user, max_k)
    if not found:
        fail(f"{user.email} has no starred papers to split into topics")
    click.echo(f"# {len(found)} topic(s) suggested from {user.email}'s {sum(len(s.papers) for s in found)} "
               "stars: paste under their [[users]] entry")
    click.echo(topics.config_block([(s.name, s.notes()) for s in found]))
    if apply:
        user_id = store.user_id(user.email)
        for suggestion in found:
            store.star(user_id, [p.id for p in suggestion.papers], topic=suggestion.name)
        summary(f"{user.email}: stars filed in {len(found)} topic(s); add the block above to the config")
    else:
        summary(f"{user.email}: {len(found)} topic(s) suggested (--apply files the stars)")


@cli.group("users")
def users_group() -> None:
    """Configured users and what is stored about them."""


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per user.")
@pass_app
def users_list(app: AppContext, as_json: bool) -> None:
    """List configured users with their stars, digests and subscription state.

    Example:

    \b
      recommender users list
    """
    users = app.api.users()
    if as_json:
        emit_json(user.as_json() for user in users)
        return
    for user in users:
        state = "subscribed" if user.subscribed else "UNSUBSCRIBED"
        click.echo(f"{user.user}\t{state}\t{user.stars} star(s)\t{user.digests_sent} digest(s) sent\t"
                   f"{user.frequency} at {user.send_at:%H:%M} {user.timezone}")


@users_group.command("feed-url")
@click.argument("email")
@click.option("--rotate", is_flag=True, help="Revoke the current URL and print a new one.")
@pass_app
def users_feed_url(app: AppContext, email: str, rotate: bool) -> None:
    """Print a reader's private Atom feed URL (served by `recommender serve`).

    Anyone with the URL can read the feed: --rotate revokes it (it answers 404 from then on)
    and prints the new one.

    Example:

    \b
      recommender users feed-url ada@example.org
      recommender users feed-url --rotate ada@example.org
    """
    from datetime import UTC, datetime

    from recommender.pipeline import channels, digests

    user = app.config.user(email)
    signer = digests.signer_for(app.config, lambda: datetime.now(UTC))
    url = channels.feed_url(app.config, app.store, signer, user, rotate)
    click.echo(url)
    if "feed" not in user.channels:
        summary(f'{user.email}: channels has no "feed" (channels = {list(user.channels)!r}): the URL answers 404 '
                'until it does')
    elif rotate:
        summary(f"{user.email}: the previous feed URL is revoked")


@users_group.command("resubscribe")
@click.argument("email")
@pass_app
def users_resubscribe(app: AppContext, email: str) -> None:
    """Send digests to a user again after they unsubscribed.

    Example:

    \b
      recommender users resubscribe ada@example.org
    """
    changed = app.api.resubscribe(email)
    click.echo(f"{email}: {'resubscribed' if changed else 'was already subscribed'}")


@users_group.command("export")
@click.argument("email")
@pass_app
def users_export(app: AppContext, email: str) -> None:
    """Print everything stored about a user as one JSON document.

    Example:

    \b
      recommender users export ada@example.org > ada.json
    """
    data = app.api.export_user(email)
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))


@users_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def users_forget(app: AppContext, email: str, yes: bool) -> None:
    """Delete a user's stars, feedback, digests and profile (the config entry stays).

    Example:

    \b
      recommender users forget ada@example.org --yes
    """
    confirm = None if yes else lambda: click.confirm(f"Delete everything stored about {email}?", abort=True)
    counts = app.api.forget_user(email, confirm)
    click.echo(f"{email}: deleted {counts.stars} star(s), {counts.feedback} feedback event(s), "
               f"{counts.digests} digest(s) and the profile")
