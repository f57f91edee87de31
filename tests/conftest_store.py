"""Store fixtures: migrated SQLite and PostgreSQL databases, a blob store, settings.

PostgreSQL tests run in a schema of their own (``edigate_test_<random>``, dropped afterwards),
so they can share the ``test`` database with anything else. When PostgreSQL is unreachable
the tests skip, except under ``CI`` where they fail: CI must not pass by skipping.
Load with ``pytest_plugins = ["conftest_store"]`` in tests/conftest.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gateway.archive.blob_store import BlobStore
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.migrate import upgrade_to_head

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The PostgreSQL URL tests use (``EDIGATE_TEST_DATABASE_URL`` overrides the default)."""
    return os.environ.get("EDIGATE_TEST_DATABASE_URL", DEFAULT_PG_URL)


def _libpq_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A reachable PostgreSQL URL; skips (or fails under CI) when there is none."""
    url = postgres_url()
    try:
        with psycopg.connect(_libpq_dsn(url), connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {exc}"
        if os.environ.get("CI") or os.environ.get("EDIGATE_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def create_pg_schema(url: str) -> str:
    """A new, empty, uniquely named schema."""
    name = f"edigate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq_dsn(url), autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{name}"')
    return name


def drop_pg_schema(url: str, name: str) -> None:
    """Drop a schema made by ``create_pg_schema`` and everything in it."""
    with psycopg.connect(_libpq_dsn(url), autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """An empty schema of its own for one test."""
    name = create_pg_schema(pg_url)
    yield name
    drop_pg_schema(pg_url, name)


@pytest.fixture
def pg_database(pg_url: str, pg_schema: str) -> Iterator[Database]:
    """A freshly migrated PostgreSQL database (its own schema) for one test."""
    database = Database.from_url(pg_url, schema=pg_schema)
    upgrade_to_head(database)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated SQLite database file for one test."""
    database = Database.from_url(f"sqlite+pysqlite:///{tmp_path / 'edigate.sqlite3'}")
    upgrade_to_head(database)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database(request: pytest.FixtureRequest) -> Database:
    """Each test once on SQLite and once on PostgreSQL."""
    name = "sqlite_database" if request.param == "sqlite" else "pg_database"
    db: Database = request.getfixturevalue(name)
    return db


@pytest.fixture
def blob_store(tmp_path: Path) -> BlobStore:
    """An empty archive folder."""
    return BlobStore(tmp_path / "archive")


@pytest.fixture
def embedded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded-mode settings on a fresh data dir, with no EDIGATE_* from the environment."""
    for name in list(os.environ):
        if name.startswith("EDIGATE_"):
            monkeypatch.delenv(name)
    return Settings(data_dir=tmp_path / "data")
