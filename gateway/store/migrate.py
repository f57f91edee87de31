"""Alembic, configured in code: works from any working directory and from an installed wheel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.models import Base


class MigrationError(Exception):
    """The database could not be migrated or is inconsistent afterwards."""


def _script_location() -> str:
    import migrations

    for entry in migrations.__path__:
        if (Path(entry) / "env.py").is_file():
            return str(entry)
    raise MigrationError("the migrations package has no env.py")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the ``migrations`` package, bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", _script_location())
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_connection(database: Database) -> Iterator[Connection]:
    with database.engine.connect() as connection:
        if database.is_sqlite:
            # Batch migrations copy and drop tables: foreign keys must be off, which SQLite
            # only allows outside a transaction, hence the raw driver connection.
            raw: Any = connection.connection.driver_connection
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            yield connection
            connection.commit()
            if database.is_sqlite:
                violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                connection.rollback()
                if violations:
                    raise MigrationError(f"foreign key violations after migrating: {violations}")
        finally:
            if database.is_sqlite:
                connection.rollback()
                connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys = ON"
                )


def upgrade_to_head(database: Database) -> None:
    """Apply every migration not yet applied."""
    with _migration_connection(database) as connection:
        command.upgrade(alembic_config(connection), "head")


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(database: Database) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(database: Database) -> list[Any]:
    """What Alembic's autogenerate would change: empty when models and database agree."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def open_database(settings: Settings) -> Database:
    """The settings' database, ready to use: the embedded SQLite is migrated on open, an
    external database must already be at head (``edigate migrate``)."""
    database = Database.from_settings(settings)
    if settings.is_embedded:
        upgrade_to_head(database)
        return database
    current, head = current_revision(database), head_revision()
    if current != head:
        database.dispose()
        raise MigrationError(
            f"database is at revision {current or 'none'}, code expects {head}; run `edigate migrate`"
        )
    return database
