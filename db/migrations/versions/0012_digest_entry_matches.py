"""Each digest entry keeps its match (0-100, the share of the reader's other candidates scored
below it), so the web view of a stored digest shows the match the email showed.

Entries stored before have no candidates to compare with: they get their place within their
own digest (the best 100, the last 0), the nearest the stored scores allow.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added in place (no batch copy of the table, whose drop would cascade to nothing here but
    # costs a rewrite of every entry).
    op.add_column("digest_entries", sa.Column("match", sa.Integer(), nullable=False, server_default="0"))
    op.execute("""
        UPDATE digest_entries SET match = (
            SELECT CASE WHEN COUNT(*) <= 1 THEN 100
                        ELSE CAST(ROUND(100.0 * SUM(CASE WHEN o.score < digest_entries.score THEN 1 ELSE 0 END)
                                        / (COUNT(*) - 1)) AS INTEGER) END
            FROM digest_entries AS o WHERE o.digest_id = digest_entries.digest_id)
    """)


def downgrade() -> None:
    op.execute("ALTER TABLE digest_entries DROP COLUMN match")
