"""Digests store what they are (their entries, the Message-ID, the time they are dated) and
their message is rendered when it is sent: the time the message is dated and its links
issued. Digests stored before keep their rendered message (digest_messages).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place, not by batch mode's copy of the table: dropping the old copy would delete,
    # through ON DELETE CASCADE, every row that refers to a digest.
    op.add_column("digests", sa.Column("dated_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("digests", "dated_at")
