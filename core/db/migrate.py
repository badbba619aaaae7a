"""Alembic migrations, run programmatically (``aurora db upgrade`` and at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from core.db.engine import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the project's migration scripts and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision(database_url: str) -> str | None:
    """The newest revision the scripts define."""
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def upgrade(database: Database, revision: str = "head") -> None:
    """Migrate the database behind ``database`` to ``revision`` (default: the newest)."""
    url = database.engine.url.render_as_string(hide_password=False)
    config = alembic_config(url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None when it was never migrated."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)


async def is_current(database: Database) -> bool:
    """Whether the database is migrated to the newest revision."""
    url = database.engine.url.render_as_string(hide_password=False)
    return await current_revision(database) == head_revision(url)
