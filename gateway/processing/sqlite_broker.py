"""The embedded default's broker: a kombu virtual transport on one SQLite table, through sqlite3.

kombu's SQLAlchemy transport kept every message forever (a fetched one only turned invisible,
so the table, and every fetch's scan, grew with each task) and went through the ORM for each
poll, fetch and publish: about 40% of an embedded worker's CPU under load. Here a publish is
one INSERT, a fetch one indexed SELECT and one ``DELETE … RETURNING`` of that row, on WAL with
``synchronous=NORMAL`` (like the main database). As before, a fetched task lives in the worker
until it is acknowledged; a crash loses it from the broker, and the outbox and delivery sweeps
publish it again: the database is the truth, the queue a doorbell.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.utils.json import dumps, loads

SCHEME = "edigate-sqlite"
BUSY_TIMEOUT_SECONDS = 30.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS broker_messages ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_broker_messages_queue ON broker_messages (queue, id)",
)


def database_path(hostname: str) -> str:
    """The file of a ``sqlite:///path`` location (what follows ``edigate-sqlite+`` in the URL)."""
    if not hostname.startswith("sqlite:///"):
        raise ValueError(f"the SQLite broker needs a sqlite:///path location, not {hostname!r}")
    return hostname[len("sqlite:///") :]


class Channel(virtual.Channel):
    """One connection to the broker file; kombu may hand a channel from thread to thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        path = database_path(self.connection.client.hostname or "")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        """Queues share one table: nothing to create."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        with self._lock:
            payload = dumps(message)  # type: ignore[no-untyped-call]
            self._db.execute("INSERT INTO broker_messages (queue, payload) VALUES (?, ?)", (queue, payload))

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        with self._lock:
            while True:
                # A read first: an empty poll takes no write lock (WAL readers never wait).
                row = self._db.execute(
                    "SELECT id FROM broker_messages WHERE queue = ? ORDER BY id LIMIT 1", (queue,)
                ).fetchone()
                if row is None:
                    raise Empty()
                taken = self._db.execute(
                    "DELETE FROM broker_messages WHERE id = ? RETURNING payload", (row[0],)
                ).fetchone()
                if taken is not None:  # else another consumer took it first: look again
                    return loads(taken[0])  # type: ignore[no-untyped-call]

    def _size(self, queue: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM broker_messages WHERE queue = ?", (queue,)
            ).fetchone()
        return int(row[0])

    def _purge(self, queue: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM broker_messages WHERE queue = ?", (queue,)).rowcount

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        super()._delete(queue, *args, **kwargs)  # type: ignore[no-untyped-call]
        self._purge(queue)

    def close(self) -> None:
        """Close the channel and its connection."""
        super().close()  # type: ignore[no-untyped-call]
        with self._lock:
            self._db.close()


class Transport(virtual.Transport):
    """The ``edigate-sqlite+sqlite:///path`` broker transport."""

    Channel = Channel
    polling_interval = 0.05
    driver_type = "sqlite"
    driver_name = "sqlite3"

    def driver_version(self) -> str:
        """The SQLite library's version."""
        return sqlite3.sqlite_version


def register() -> None:
    """Make ``edigate-sqlite+sqlite:///path`` URLs resolve to this transport."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
