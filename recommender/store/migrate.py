"""Create or upgrade the schema with the Alembic migrations shipped in the package."""

from __future__ import annotations

from importlib.resources import as_file
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from recommender.base.errors import SchemaError
from recommender.base.resources import migrations_dir

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

# The newest revision in db/migrations/versions (a test keeps the two in step). Every command
# checks the schema; comparing with this constant spares it importing Alembic (~0.2 s) when
# the database is current, which is nearly always.
HEAD_REVISION = "0017"


def _alembic_config(location: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", location)
    return config


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``target`` (the newest revision); returns (revision before, after)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    with as_file(migrations_dir()) as location:
        config = _alembic_config(str(location))
        script = ScriptDirectory.from_config(config)
        head = script.get_current_head()
        with engine.begin() as connection:
            before = _current(connection)
            _refuse_unknown(script, before, engine)
            config.attributes["connection"] = connection
            command.upgrade(config, target)
        return before, str(head) if target == "head" else target


def check(engine: Engine) -> None:
    """Fail clearly when the schema is missing, older than the code, or newer."""
    if _stored_revision(engine) == HEAD_REVISION:
        return
    from alembic.script import ScriptDirectory

    with as_file(migrations_dir()) as location:
        script = ScriptDirectory.from_config(_alembic_config(str(location)))
        with engine.connect() as connection:
            current = _current(connection)
        if current is None:
            raise SchemaError(f"{_where(engine)}: database not initialised; run `recommender init` first")
        _refuse_unknown(script, current, engine)
        if current != script.get_current_head():
            raise SchemaError(
                f"{_where(engine)}: database schema {current} is older than this version of recommender; "
                "run `recommender init` to upgrade it"
            )


def _stored_revision(engine: Engine) -> str | None:
    """The revision recorded in Alembic's version table, read without Alembic (None if none)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _refuse_unknown(script: ScriptDirectory, revision: str | None, engine: Engine) -> None:
    if revision is None:
        return
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise SchemaError(
            f"{_where(engine)}: database schema {revision} is newer than this version of recommender "
            "understands; upgrade recommender (nothing was changed)"
        )


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
