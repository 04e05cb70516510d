"""Paper category: the primary subject class a source gives (arXiv's ``cs.LG``), shown in
the digest. Papers stored before it have none (an empty string) until a source names it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("papers") as batch:
        batch.add_column(sa.Column("category", sa.String(length=32), nullable=False, server_default=""))


def downgrade() -> None:
    # Not a batch (a copy of the table): other tables' foreign keys point at papers.
    op.execute("ALTER TABLE papers DROP COLUMN category")
