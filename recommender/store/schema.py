"""SQLAlchemy tables. Alembic migrations in db/migrations create and upgrade them.

Users and their preferences live in the config; the ``users`` table holds only what
must persist (the email key, the unsubscribed flag) so stars, feedback and digests
can reference it. Paper ids are strings and stable: the JSONL id, else the arXiv id,
else a short hash of the normalised title.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    column,
    table,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """The declarative base of every table."""


class PaperRow(Base):
    __tablename__ = "papers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    arxiv_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    title_key: Mapped[str] = mapped_column(Text, index=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(JSON)
    url: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    category: Mapped[str] = mapped_column(String(32), default="", server_default="")


class BatchRow(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    batch_date: Mapped[date | None] = mapped_column(Date)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ingest_run: Mapped[str] = mapped_column(String(64), index=True)
    entry_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BatchEntryRow(Base):
    __tablename__ = "batch_entries"
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id"), index=True)


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Feed URLs carry this number: `users feed-url --rotate` moves it on, revoking the old URL.
    feed_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StarRow(Base):
    __tablename__ = "stars"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    topic: Mapped[str | None] = mapped_column(String(64))  # the reader's topic; None: untopiced


class FeedbackRow(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id"))
    action: Mapped[str] = mapped_column(String(8))
    digest_id: Mapped[int | None] = mapped_column(Integer)
    token_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    topic: Mapped[str | None] = mapped_column(String(64))  # the section the paper was shown in


class ProfileRow(Base):
    """A user's profile in term space (term -> weight), so it survives a refit."""

    __tablename__ = "profiles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer)
    signal_version: Mapped[str] = mapped_column(String(64))
    terms: Mapped[dict[str, float]] = mapped_column(JSON)
    sources: Mapped[list[list[object]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signal_generation: Mapped[int | None] = mapped_column(Integer)  # the reader's, when it was built


class ModelRow(Base):
    """Fitted models, one row per kind (tfidf, collab), pickled, with the key they were fit for
    (corpus version and settings): a different key means refit."""

    __tablename__ = "model_cache"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class DigestRow(Base):
    """The outbox: a digest is stored with its rendered message before any network call."""

    __tablename__ = "digests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | failed | no email
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    last_batch_id: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    server_reply: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The reader's channels when it was made, between commas (",email,feed,webhook:lab,"): the
    # feed shows the digests that name "feed", a webhook is owed those that name it.
    channels: Mapped[str] = mapped_column(Text, default=",email,", server_default=",email,")
    # The time the message is dated and its links issued. Set: the message is rendered from
    # the digest's entries when it is sent, the same bytes at every attempt (no stored message).
    dated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChannelPostRow(Base):
    """The outbox of webhook posts: one per webhook and run, rendered (a JSON list of request
    bodies) before any network call, leased and marked like a digest. ``parts_sent`` counts
    the bodies already accepted, so a crash re-sends only the one in flight."""

    __tablename__ = "channel_posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | failed
    papers: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    reply: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChannelPostDigestRow(Base):
    """The digests a webhook post covers (one per reader of the webhook's group)."""

    __tablename__ = "channel_post_digests"
    post_id: Mapped[int] = mapped_column(ForeignKey("channel_posts.id", ondelete="CASCADE"), primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True, index=True)


class DigestMessageRow(Base):
    """A digest's rendered message, for digests stored before messages were rendered at send
    time (``DigestRow.dated_at`` unset), apart from its row: delivery updates the row (lease,
    then outcome), and SQLite rewrites a whole row on update, a large message included."""

    __tablename__ = "digest_messages"
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True)
    message: Mapped[bytes] = mapped_column(LargeBinary)


class DigestEntryRow(Base):
    __tablename__ = "digest_entries"
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    why: Mapped[str] = mapped_column(Text, default="")
    match: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # Recommendation.match
    topic: Mapped[str | None] = mapped_column(String(64))  # the digest section it was shown in
    __table_args__ = (UniqueConstraint("digest_id", "paper_id"),)


class PaperAliasRow(Base):
    """Another id a paper was known by (the later of two entries found to be one paper)."""

    __tablename__ = "paper_aliases"
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"))
    __table_args__ = (Index("ix_paper_aliases_paper", "paper_id"),)


class LinkHitRow(Base):
    """Recent link hits per digest, to tell a link scanner's sweep from a reader's clicks."""

    __tablename__ = "link_hits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest_id: Mapped[int] = mapped_column(Integer)
    client: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(16), server_default="")
    paper_id: Mapped[str] = mapped_column(String(64), server_default="")
    __table_args__ = (Index("ix_link_hits_digest_client", "digest_id", "client", "created_at"),
                      Index("ix_link_hits_digest_time", "digest_id", "created_at"))


Index("ix_feedback_user_paper", FeedbackRow.user_id, FeedbackRow.paper_id)
# The pending digests in id order, apart from every digest ever sent: a claim (and the
# unsubscribe and dead-lease checks before it) reads only what is owed, however long the history.
Index("ix_digests_created_at", DigestRow.created_at)  # pruning finds the first digest kept
Index("ix_digests_pending", DigestRow.id, postgresql_where=DigestRow.status == "pending",
      sqlite_where=DigestRow.status == "pending")


class SourceStateRow(Base):
    """What the last fetch of a web source returned, for conditional requests and freshness."""

    __tablename__ = "source_state"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    etag: Mapped[str] = mapped_column(Text, default="")
    last_modified: Mapped[str] = mapped_column(Text, default="")
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # failed runs in a row


class ScheduleStateRow(Base):
    """A reader's schedule: the rule it was computed from (the trigger as text, "" once the
    reader left the config), the next run (indexed: a tick reads only the readers due) and the
    last run processed, so a restart knows what it missed."""

    __tablename__ = "schedule_state"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rule: Mapped[str] = mapped_column(String(120), server_default="")
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class DueReaderRow(Base):
    """A reader whose digest run is owed: enqueued by the scheduler's tick, claimed in shards
    under a lease (a dead holder's shard is claimed again), deleted once the run is recorded."""

    __tablename__ = "due_readers"
    __table_args__ = (Index("ix_due_readers_due", "due_at", "user_id"),)  # shards are claimed in this order
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str] = mapped_column(String(64), server_default="", index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReaderSettingRow(Base):
    """A reader's ``[[users]]`` settings as JSON (base.config_readers), synced from the config
    in bulk: a worker reads those of the readers it claimed, not the config's every reader."""

    __tablename__ = "reader_settings"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    webhook: Mapped[str] = mapped_column(String(64), server_default="", index=True)
    settings: Mapped[str] = mapped_column(Text)


class RunReaderRow(Base):
    """The readers of one `digest send` run, so its claims name them by the run instead of
    listing their ids in every statement (PostgreSQL takes at most 65,535 parameters)."""

    __tablename__ = "run_readers"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)


# SQLite only, written by triggers (migration 0006), so not part of the mapped schema.
SIGNAL_GENERATIONS = table("signal_generations", column("user_id", Integer), column("generation", Integer))
