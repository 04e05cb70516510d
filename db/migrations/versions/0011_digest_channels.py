"""Channels beyond email: the channels each digest was made for, the webhook posts' outbox
(and the digests each covers), and the number feed URLs carry (rotated to revoke them).
Existing digests were made for email only.

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added and dropped in place, not by batch mode's copy of the table: dropping the old copy
    # would delete, through ON DELETE CASCADE, every row that refers to a user or a digest.
    op.add_column("users", sa.Column("feed_generation", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("digests", sa.Column("channels", sa.Text(), nullable=False, server_default=",email,"))
    op.create_table(
        "channel_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("papers", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("parts_sent", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_channel_posts_webhook", "channel_posts", ["webhook"])
    op.create_index("ix_channel_posts_status", "channel_posts", ["status"])
    op.create_table(
        "channel_post_digests",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["channel_posts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "digest_id"),
    )
    op.create_index("ix_channel_post_digests_digest_id", "channel_post_digests", ["digest_id"])


def downgrade() -> None:
    op.drop_index("ix_channel_post_digests_digest_id", table_name="channel_post_digests")
    op.drop_table("channel_post_digests")
    op.drop_index("ix_channel_posts_status", table_name="channel_posts")
    op.drop_index("ix_channel_posts_webhook", table_name="channel_posts")
    op.drop_table("channel_posts")
    op.execute("ALTER TABLE digests DROP COLUMN channels")
    op.execute("ALTER TABLE users DROP COLUMN feed_generation")
