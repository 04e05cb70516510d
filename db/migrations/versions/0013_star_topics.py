"""Topics: a star, a feedback click and a digest entry may name the reader's topic they belong
to (``[[users.topics]]``). Every row written before stays untopiced (NULL). Plain ADD COLUMN:
on SQLite a copied table would lose the signal-generation triggers of 0006.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("stars", "feedback", "digest_entries")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("topic", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:  # DROP COLUMN in place (SQLite 3.35+): a copied table would lose its triggers
        op.execute(f"ALTER TABLE {table} DROP COLUMN topic")
