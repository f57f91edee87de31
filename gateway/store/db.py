"""Engines, sessions and the unit of work: the caller owns the transaction.

On SQLite every read-write unit of work starts with ``BEGIN IMMEDIATE``: it takes the write
lock up front, so two writers never both read the same state and then collide (WAL's
``SQLITE_BUSY_SNAPSHOT``). Writers first queue for their turn on a file lock next to the
database (and a thread lock within a process): SQLite's own busy handler polls with sleeps
growing to 100 ms, so writers of several processes racing for its lock starved each other
for seconds, while a blocked ``flock`` wakes the moment the previous writer is done. Read-only
units use a deferred ``BEGIN`` and run alongside writers thanks to WAL.

On PostgreSQL row locks (``SELECT … FOR UPDATE``) do the serialising where it matters (control
numbers, event chain); read-only units run in autocommit (under READ COMMITTED a transaction
gives each statement its own snapshot anyway, so BEGIN and ROLLBACK would only add two round
trips).

A pooled PostgreSQL connection is checked before use without a round trip: an idle connection
has nothing to read unless the server closed it (a restart, ``pg_terminate_backend``), so a
readable socket means stale and the pool connects again. ``pool_pre_ping`` would send a
``SELECT 1`` (and a ``BEGIN``) for every unit of work.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
        poller = select.poll()  # not select(): a descriptor past 1024 would not fit its set
        poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True


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


class WriterQueue:
    """Writers of one SQLite file take turns: a thread lock, then ``flock`` on ``<file>.write-lock``."""

    def __init__(self, path: str | None, *, serial: bool = True) -> None:
        self.lock_path = f"{path}.write-lock" if path else None
        self.serial = serial
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn for the block (re-entrant within a thread)."""
        if not self.serial:
            yield
            return
        with self._thread_lock:
            fd = self._file() if self._depth == 0 else None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if self.lock_path is None:
            return None
        if self._pid != os.getpid():  # a forked child must not share the parent's lock
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


_queues: dict[str, WriterQueue] = {}
_queues_lock = threading.Lock()


def writer_queue(engine: Engine) -> WriterQueue:
    """The process's queue for an SQLite engine's file; servers like PostgreSQL lock rows themselves."""
    if engine.dialect.name != "sqlite":
        return WriterQueue(None, serial=False)
    path = engine.url.database
    if not path or path == ":memory:":
        return WriterQueue(None)
    key = os.path.realpath(path)
    with _queues_lock:
        return _queues.setdefault(key, WriterQueue(key))


@dataclass(frozen=True)
class Database:
    """An engine, its session factory, and (SQLite) the queue its writers take turns in."""

    engine: Engine
    sessions: sessionmaker[Session]
    writers: WriterQueue = field(default_factory=lambda: WriterQueue(None))

    @classmethod
    def from_url(cls, url: str, *, schema: str | None = None, **engine_kwargs: Any) -> Database:
        """A database for a SQLAlchemy URL (``schema``: PostgreSQL search_path)."""
        engine = create_db_engine(url, schema=schema, **engine_kwargs)
        return cls(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False),
                   writers=writer_queue(engine))

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
        if read_only:
            with self.sessions() as session:
                session.connection(execution_options=self._read_only_options)
                try:
                    yield session
                finally:
                    session.rollback()
            return
        with self.writers.turn(), self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
