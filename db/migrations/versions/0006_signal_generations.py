"""Signal generations (SQLite): each user's count of changes to their stars and feedback,
moved on by triggers, so a cached profile can tell whether its user's signals changed without
reading them. Triggers catch every writer (commands, the feedback endpoint, cascaded deletes).
The rows outlive their user: a generation never goes back, so a reused user id never matches
a profile cached for the user who had it before.

On PostgreSQL profiles are not cached (many hosts, and a hot row per click), so nothing here.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BUMP = ("INSERT INTO signal_generations (user_id, generation) VALUES ({row}.user_id, 1) "
        "ON CONFLICT (user_id) DO UPDATE SET generation = generation + 1;")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE signal_generations (user_id INTEGER PRIMARY KEY, generation INTEGER NOT NULL)")
    for table in ("stars", "feedback"):
        op.execute(f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {table} BEGIN {BUMP.format(row='NEW')} END")
        op.execute(f"CREATE TRIGGER {table}_deleted AFTER DELETE ON {table} BEGIN {BUMP.format(row='OLD')} END")
        op.execute(f"CREATE TRIGGER {table}_updated AFTER UPDATE ON {table} BEGIN "
                   f"{BUMP.format(row='OLD')} {BUMP.format(row='NEW')} END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("stars", "feedback"):
        for change in ("inserted", "deleted", "updated"):
            op.execute(f"DROP TRIGGER {table}_{change}")
    op.execute("DROP TABLE signal_generations")
