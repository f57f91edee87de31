"""Engines, sessions and the unit of work: the caller owns the transaction.

On SQLite every read-write unit of work starts with ``BEGIN IMMEDIATE``: it takes the write
lock up front (waiting up to ``busy_timeout``), so two writers never both read the same state
and then collide (WAL's ``SQLITE_BUSY_SNAPSHOT``). Read-only units use a deferred ``BEGIN`` and
run alongside writers thanks to WAL. On PostgreSQL row locks (``SELECT … FOR UPDATE``) do the
serialising where it matters (control numbers, event chain).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "edigate_sqlite_begin"


def create_db_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the SQLite pragmas or PostgreSQL search_path applied."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    if schema:
        connect_args["options"] = f"-c search_path={schema}"
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy (not the driver) issue BEGIN, so we choose its kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


@dataclass(frozen=True)
class Database:
    """An engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_url(cls, url: str, *, schema: str | None = None, **engine_kwargs: Any) -> Database:
        """A database for a SQLAlchemy URL (``schema``: PostgreSQL search_path)."""
        engine = create_db_engine(url, schema=schema, **engine_kwargs)
        return cls(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database the settings name (the embedded SQLite file by default)."""
        return cls.from_url(settings.effective_database_url(), schema=settings.database_schema)

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def unit_of_work(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self.sessions() as session:
            if read_only:
                session.connection(execution_options={_BEGIN_OPTION: "DEFERRED"})
            try:
                yield session
                if read_only:
                    session.rollback()
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
