"""Link hits carry what was hit (action and paper), so a link scanner's sweep is told from a
reader's quick clicks by what it hits (both "more" and "less" of the same papers), whatever
addresses it comes from.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("link_hits") as batch:
        batch.add_column(sa.Column("action", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("paper_id", sa.String(length=64), nullable=False, server_default=""))
    op.create_index("ix_link_hits_digest_time", "link_hits", ["digest_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_link_hits_digest_time", table_name="link_hits")
    with op.batch_alter_table("link_hits") as batch:
        batch.drop_column("paper_id")
        batch.drop_column("action")
