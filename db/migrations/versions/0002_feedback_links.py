"""Feedback links: the explanation stored with each digest entry (for the web view) and a
table of recent link hits (to tell link scanners from readers).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digest_entries") as batch:
        batch.add_column(sa.Column("why", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "link_hits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_link_hits_digest_client", "link_hits", ["digest_id", "client", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_link_hits_digest_client", table_name="link_hits")
    op.drop_table("link_hits")
    with op.batch_alter_table("digest_entries") as batch:
        batch.drop_column("why")
