"""Engines, sessions and the unit of work: the caller owns the transaction.

On SQLite every read-write unit of work starts with ``BEGIN IMMEDIATE``: it takes the write
lock up front (waiting up to ``busy_timeout``), so two writers never both read the same state
and then collide (WAL's ``SQLITE_BUSY_SNAPSHOT``). Read-only units use a deferred ``BEGIN`` and
run alongside writers thanks to WAL. On PostgreSQL row locks (``SELECT … FOR UPDATE``) do the
serialising where it matters (control numbers, event chain); read-only units run in autocommit
(under READ COMMITTED a transaction gives each statement its own snapshot anyway, so BEGIN and
ROLLBACK would only add two round trips).

A pooled PostgreSQL connection is checked before use without a round trip: an idle connection
has nothing to read unless the server closed it (a restart, ``pg_terminate_backend``), so a
readable socket means stale and the pool connects again. ``pool_pre_ping`` would send a
``SELECT 1`` (and a ``BEGIN``) for every unit of work.
"""

from __future__ import annotations

import json
import select
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "edigate_sqlite_begin"


def json_text(value: Any) -> str:
    """JSON columns' text: orjson (several times faster than ``json``), else ``json`` for what it refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):  # an int past 64 bits, say
        return json.dumps(value)


def create_db_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the SQLite pragmas or PostgreSQL search_path applied."""
    kwargs.setdefault("json_serializer", json_text)
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
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    event.listen(engine, "checkout", _refuse_closed_connection)
    return engine


def server_closed(dbapi_connection: Any) -> bool:
    """True when an idle connection's socket is readable (or gone): the server has closed it."""
    try:
        fileno = dbapi_connection.fileno()
        readable, _, _ = select.select([fileno], [], [], 0)
    except (OSError, ValueError, AttributeError):
        return True
    return bool(readable)


def _refuse_closed_connection(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    if server_closed(dbapi_connection):
        raise sa_exc.DisconnectionError("the server closed this pooled connection")


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
    def _read_only_options(self) -> dict[str, str]:
        if self.is_sqlite:
            return {_BEGIN_OPTION: "DEFERRED"}
        return {"isolation_level": "AUTOCOMMIT"}

    @property
    def is_sqlite(self) -> bool:
        """True for SQLite."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def unit_of_work(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self.sessions() as session:
            if read_only:
                session.connection(execution_options=self._read_only_options)
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
