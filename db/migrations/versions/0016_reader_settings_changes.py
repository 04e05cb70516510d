"""Readers' settings in the database and whose signals changed, on PostgreSQL too: each
reader's ``[[users]]`` settings (synced from the config in bulk by `init`, `run` and SIGHUP;
a worker reads only those of the shard it claimed), and the signal generations that SQLite
counts since 0006 counted on PostgreSQL as well (statement-level triggers over the changed
rows, so a bulk star import bumps each reader once), with the generation each stored profile
was built from: a refit rebuilds only the profiles whose reader's stars or clicks changed.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# One function per kind of change: a trigger with transition tables has one event.
BUMP = """CREATE FUNCTION signal_generations_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO signal_generations (user_id, generation)
  SELECT DISTINCT user_id, 1 FROM ({rows}) AS changed ORDER BY user_id
  ON CONFLICT (user_id) DO UPDATE SET generation = signal_generations.generation + 1;
  RETURN NULL;
END $$"""
KINDS = {"new": ("INSERT", "NEW TABLE AS new_rows", "SELECT user_id FROM new_rows"),
         "old": ("DELETE", "OLD TABLE AS old_rows", "SELECT user_id FROM old_rows"),
         "both": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                  "SELECT user_id FROM old_rows UNION SELECT user_id FROM new_rows")}


def upgrade() -> None:
    op.create_table(
        "reader_settings",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("webhook", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index("ix_reader_settings_webhook", "reader_settings", ["webhook"])
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("signal_generation", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE signal_generations (user_id INTEGER PRIMARY KEY, generation INTEGER NOT NULL)")
    for name, (_event, _referencing, rows) in KINDS.items():
        op.execute(BUMP.format(name=name, rows=rows))
    for table in ("stars", "feedback"):
        for name, (event, referencing, _rows) in KINDS.items():
            op.execute(f"CREATE TRIGGER {table}_{name}_signals AFTER {event} ON {table} REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION signal_generations_{name}()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("stars", "feedback"):
            for name in KINDS:
                op.execute(f"DROP TRIGGER {table}_{name}_signals ON {table}")
        for name in KINDS:
            op.execute(f"DROP FUNCTION signal_generations_{name}()")
        op.execute("DROP TABLE signal_generations")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("signal_generation")
    op.drop_index("ix_reader_settings_webhook", table_name="reader_settings")
    op.drop_table("reader_settings")
