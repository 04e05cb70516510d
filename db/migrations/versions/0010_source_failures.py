"""Source failures in a row: how many fetch runs of a source have failed since it last
worked, so a source failing for three runs is a warning in `config check` and the daemon's log.

Revision ID: 0010
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("source_state") as batch:
        batch.drop_column("failures")
