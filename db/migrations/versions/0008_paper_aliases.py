"""Paper aliases: every id a paper was known by (a source's own id, a title hash) before it was
matched to a stored paper, so commands accept each of them.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paper_aliases",
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("paper_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["paper_id"], ["papers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alias"),
    )
    op.create_index("ix_paper_aliases_paper", "paper_aliases", ["paper_id"])


def downgrade() -> None:
    op.drop_index("ix_paper_aliases_paper", table_name="paper_aliases")
    op.drop_table("paper_aliases")
