"""digest preview / send, outbox list / retry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from recommender.app.cli.app import AppContext, cli, emit_json, pass_app, summary
from recommender.base.domain import DigestStatus
from recommender.base.errors import RecommenderError
from recommender.pipeline.store_access import ChannelPosts, Outbox


def _now() -> datetime:
    return datetime.now(UTC)


@cli.group()
def digest() -> None:
    """Preview and send digest emails."""


@digest.command("preview")
@click.option("--user", "email", metavar="EMAIL", help="Whose digest (default: the only user).")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Where to write the HTML (default: digest-preview.html here).")
@click.option("--text", "text_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the plain-text part here.")
@click.option("--eml", "eml_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the whole message, headers included, as it would be sent (for a spam checker).")
@pass_app
def digest_preview(app: AppContext, email: str | None, out: str | None, text_out: str | None,
                   eml_out: str | None) -> None:
    """Render the next digest without sending it or changing anything; prints the file's path.

    Example:

    \b
      recommender digest preview --out preview/digest.html
      recommender digest preview --eml preview/digest.eml && spamassassin -t < preview/digest.eml
    """
    user = app.user(email)
    # Imported on use: rendering and SMTP imports would cost every other command's start-up.
    from recommender.pipeline import digests

    previewed = digests.preview(app.config, app.store, user, _now)
    if previewed is None:
        click.echo(f"{user.email}: nothing new: no digest would be sent now, nothing written "
                   "(new papers come with `recommender fetch` or `recommender ingest FILE`)")
        return
    rendered, count, message = previewed
    target = Path(out or "digest-preview.html").expanduser()
    _write(target, rendered.html)
    if text_out:
        _write(Path(text_out).expanduser(), rendered.text)
    if eml_out:
        _write(Path(eml_out).expanduser(), message)
    click.echo(str(target.resolve()))
    summary(f"{user.email}: preview of {count} paper(s): {rendered.subject}")


def _write(path: Path, content: str | bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise RecommenderError(f"{path}: cannot write: {exc.strerror}") from None


@digest.command("send")
@click.option("--user", "email", metavar="EMAIL", help="Only this user (default: every user).")
@click.option("--dry-run", is_flag=True, help="Build the digests and report, but store and send nothing.")
@pass_app
def digest_send(app: AppContext, email: str | None, dry_run: bool) -> None:
    """Build each user's digest and send it now; pending deliveries from earlier runs go first.

    Prints one line per user: sent N papers, nothing new, or failed with the reason; for a
    reader with channels beyond email, where each stands in brackets. Running it again with
    nothing new sends nothing. Exits 1 when any delivery, on any channel, was deferred or failed.

    Example:

    \b
      recommender digest send
      recommender digest send --user ada@example.org --dry-run
    """
    users = app.users(email, all_users=True)
    from recommender.base import parallel
    from recommender.pipeline import digests

    results = digests.run(app.config, app.store, users, _now, dry_run=dry_run,
                             deliver_while_queueing=parallel.can_fork())
    for result in results:
        click.echo(result.line())
    failed = [r for r in results if r.status in ("failed", "deferred") or r.channel_undelivered]
    published = sum(r.status == "published" for r in results)
    summary(f"{sum(r.status == 'sent' for r in results)} sent, "
            + (f"{published} published without email, " if published else "")
            + f"{len(failed)} not delivered, {sum(r.status == 'nothing new' for r in results)} with nothing new")
    if failed:
        raise SystemExit(1)


@cli.group()
def outbox() -> None:
    """Inspect and re-send stored deliveries."""


@outbox.command("list")
@click.option("--status", type=click.Choice([status.value for status in DigestStatus]), default=None,
              help="Only this status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per delivery.")
@pass_app
def outbox_list(app: AppContext, status: str | None, as_json: bool) -> None:
    """List stored digests with their email delivery status, then the webhook posts.

    A digest of a reader without the email channel shows "no email" (its feed has it).

    Example:

    \b
      recommender outbox list --status failed
    """
    items = Outbox(app.store).items(status)
    posts = ChannelPosts(app.store).items(status)
    if as_json:
        emit_json([*(item.as_json() | {"channel": "email"} for item in items), *(p.as_json() for p in posts)])
        return
    for item in items:
        detail = item.last_error if item.status != "sent" else item.server_reply
        click.echo(f"{item.id}\t{item.status}\t{item.email}\t{item.entries} paper(s)\t{item.created_at:%Y-%m-%d %H:%M}\t{detail}")
    for post in posts:
        detail = post.last_error if post.status != "sent" else post.reply
        click.echo(f"post {post.id}\t{post.status}\twebhook:{post.webhook}\t{post.papers} paper(s)\t"
                   f"{post.created_at:%Y-%m-%d %H:%M}\t{post.parts_sent}/{post.parts} part(s)\t{detail}")
    count = len(items) + len(posts)
    summary(f"{count} deliver{'y' if count == 1 else 'ies'}")


@outbox.command("retry")
@pass_app
def outbox_retry(app: AppContext) -> None:
    """Send failed and deferred deliveries now (with their stored message and Message-ID).

    A failed digest that a newer digest has superseded is not sent again.

    Example:

    \b
      recommender outbox retry
    """
    store = app.store
    requeued = Outbox(store).requeue_failed()
    reposted = ChannelPosts(store).requeue_failed()
    from recommender.pipeline import channels, digests

    outcomes = digests.deliver_pending(app.config, store, _now)
    posted = channels.deliver_posts(app.config, store, _now)
    requeued += reposted
    sent = sum(o.status == "sent" for o in outcomes) + sum(p.status == "sent" for p in posted)
    for outcome in outcomes:
        if outcome.status != "sent":
            click.echo(f"digest {outcome.digest_id}: {outcome.status}: {outcome.detail}")
    for post in posted:
        if post.status != "sent":
            click.echo(f"post {post.post_id}: {post.status}: {post.detail}")
    summary(f"requeued {len(requeued)} failed or deferred deliver{'y' if len(requeued) == 1 else 'ies'}; sent {sent}")
    if sent < len(outcomes) + len(posted):
        raise SystemExit(1)
