"""Readers' schedules in the database: the rule and the next run of each reader (indexed), the
readers whose run is owed (claimed in shards under a lease), and the readers of a `digest send`
run (so its claims do not list reader ids); the pending digests behind a partial index, so a
claim's cost does not grow with the digests sent before; digests by creation time (pruning).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedule_state") as batch:
        batch.add_column(sa.Column("rule", sa.String(length=120), nullable=False, server_default=""))
        batch.add_column(sa.Column("next_run_at", sa.DateTime(), nullable=True))
    op.create_index("ix_schedule_state_next_run_at", "schedule_state", ["next_run_at"])
    op.create_table(
        "due_readers",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index("ix_due_readers_lease_owner", "due_readers", ["lease_owner"])
    op.create_index("ix_digests_created_at", "digests", ["created_at"])
    pending = sa.text("status = 'pending'")
    op.create_index("ix_digests_pending", "digests", ["id"], postgresql_where=pending, sqlite_where=pending)
    op.create_table(
        "run_readers",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("run_readers")
    op.drop_index("ix_digests_pending", table_name="digests")
    op.drop_index("ix_digests_created_at", table_name="digests")
    op.drop_index("ix_due_readers_lease_owner", table_name="due_readers")
    op.drop_table("due_readers")
    op.drop_index("ix_schedule_state_next_run_at", table_name="schedule_state")
    with op.batch_alter_table("schedule_state") as batch:
        batch.drop_column("next_run_at")
        batch.drop_column("rule")
