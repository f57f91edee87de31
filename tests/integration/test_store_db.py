"""The unit of work on PostgreSQL: stale pooled connections are replaced, reads need no transaction."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from gateway.store.db import Database, server_closed

pytestmark = pytest.mark.integration


def _backend_pid(database: Database) -> int:
    with database.unit_of_work(read_only=True) as session:
        pid: int = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return pid


def test_a_connection_the_server_closed_is_replaced_before_use(pg_database: Database) -> None:
    first = _backend_pid(pg_database)
    dsn = pg_database.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as admin:  # not from the pool: that would be `first`
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s"
        deadline = time.monotonic() + 5
        while not admin.execute(gone, (first,)).fetchone()[0] and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.01)
    # The pooled connection to the killed backend must not reach the caller as an error.
    for _ in range(3):
        with pg_database.unit_of_work() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    assert _backend_pid(pg_database) != first


def test_an_idle_live_connection_is_not_taken_for_closed(pg_database: Database) -> None:
    with pg_database.engine.connect() as connection:
        assert not server_closed(connection.connection.dbapi_connection)


def test_read_only_units_run_without_a_transaction(pg_database: Database) -> None:
    with pg_database.unit_of_work(read_only=True) as session:
        in_transaction = session.execute(text("SELECT now() <> statement_timestamp()")).scalar_one()
    assert in_transaction is False


def test_a_connection_past_descriptor_1024_is_still_seen_alive(pg_url: str) -> None:
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("cannot open more than 2048 files here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    database = Database.from_url(pg_url)
    try:
        with database.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw.fileno() > 1024 and not server_closed(raw)
    finally:
        database.dispose()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
