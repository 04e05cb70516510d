"""Digest messages in their own table: the outbox updates a digest's status and lease twice
per delivery, and SQLite rewrites a whole row on update, its ~70 kB message included.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_messages",
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("digest_id"),
    )
    op.execute("INSERT INTO digest_messages (digest_id, message) SELECT id, message FROM digests")
    # Dropped in place (SQLite >= 3.35), not by batch mode's copy of the table: dropping the old
    # copy would delete, through ON DELETE CASCADE, every row that refers to a digest.
    op.execute("ALTER TABLE digests DROP COLUMN message")


def downgrade() -> None:
    op.add_column("digests", sa.Column("message", sa.LargeBinary(), nullable=False, server_default=sa.text("''")))
    op.execute("UPDATE digests SET message = (SELECT message FROM digest_messages WHERE digest_id = digests.id)")
    op.drop_table("digest_messages")
