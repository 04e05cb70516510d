"""digest preview / send, outbox list / retry."""

from __future__ import annotations

from pathlib import Path

import click

from recommender.app.cli.app import AppContext, cli, emit_json, pass_app, summary
from recommender.base.domain import DigestStatus
from recommender.base.errors import RecommenderError


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
    previewed = app.api.preview(user.email)
    if previewed is None:
        click.echo(f"{user.email}: nothing new: no digest would be sent now, nothing written "
                   "(new papers come with `recommender fetch` or `recommender ingest FILE`)")
        return
    target = Path(out or "digest-preview.html").expanduser()
    _write(target, previewed.html)
    if text_out:
        _write(Path(text_out).expanduser(), previewed.text)
    if eml_out:
        _write(Path(eml_out).expanduser(), previewed.message)
    click.echo(str(target.resolve()))
    summary(f"{user.email}: preview of {previewed.papers} paper(s): {previewed.subject}")


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
    results = app.api.send([user.email for user in app.users(email, all_users=True)], dry_run)
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
    deliveries = app.api.outbox(status)
    items, posts = deliveries.digests, deliveries.posts
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
    """Send failed and deferred deliveries now (the same message, with the same Message-ID).

    A failed digest that a newer digest has superseded is not sent again.

    Example:

    \b
      recommender outbox retry
    """
    retried = app.api.retry()
    for outcome in retried.outcomes:
        if outcome.status != "sent":
            click.echo(f"digest {outcome.digest_id}: {outcome.status}: {outcome.detail}")
    for post in retried.posts:
        if post.status != "sent":
            click.echo(f"post {post.post_id}: {post.status}: {post.detail}")
    requeued = retried.requeued
    summary(f"requeued {len(requeued)} failed or deferred deliver{'y' if len(requeued) == 1 else 'ies'}; "
            f"sent {retried.sent}")
    if not retried.all_sent:
        raise SystemExit(1)
