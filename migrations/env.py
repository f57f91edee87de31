"""Alembic environment: runs on the connection ``gateway.store.migrate`` hands over.

Called through the ``alembic`` command instead, it opens the database named by
``sqlalchemy.url`` or, failing that, by the gateway's settings.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, String

from gateway.settings import Settings
from gateway.store.db import create_db_engine
from gateway.store.models import Base
from gateway.store.types import EnumText, UtcDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our TypeDecorators as the portable types they store."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EnumText):
        return f"sa.String(length={cast(String, obj.impl_instance).length})"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        **kwargs,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL instead of running it."""
    url = config.get_main_option("sqlalchemy.url") or Settings().effective_database_url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the handed-over connection, or on one opened from the settings."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    settings = Settings()
    url = config.get_main_option("sqlalchemy.url") or settings.effective_database_url()
    engine = create_db_engine(url, schema=settings.database_schema)
    try:
        with engine.connect() as new_connection:
            _run_on(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
