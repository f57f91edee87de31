"""Migrations run identically on SQLite and PostgreSQL and agree with the models."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from gateway.cli import store_commands
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.migrate import (
    MigrationError,
    alembic_config,
    current_revision,
    head_revision,
    open_database,
    schema_differences,
    upgrade_to_head,
)
from gateway.store.models import Base

pytestmark = pytest.mark.integration


def test_migrated_database_is_at_head_and_matches_the_models(database: Database) -> None:
    assert current_revision(database) == head_revision()
    assert schema_differences(database) == []
    tables = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_migrating_twice_changes_nothing(database: Database) -> None:
    upgrade_to_head(database)
    assert current_revision(database) == head_revision()
    assert schema_differences(database) == []


def test_downgrade_to_base_and_back_leaves_a_matching_schema(database: Database) -> None:
    with database.engine.connect() as connection:
        command.downgrade(alembic_config(connection), "base")
        connection.commit()
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    upgrade_to_head(database)
    assert schema_differences(database) == []


def test_empty_sqlite_file_is_migrated_from_scratch(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+pysqlite:///{tmp_path / 'new' / 'db.sqlite3'}")
    try:
        assert current_revision(database) is None
        upgrade_to_head(database)
        assert schema_differences(database) == []
    finally:
        database.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(
    sqlite_database: Database,
) -> None:
    with sqlite_database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000


def test_migrate_command_works_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDIGATE_DATABASE_URL", raising=False)
    args = _parse(["migrate", "--data-dir", str(tmp_path / "data")])
    assert args.handler(args) == 0
    assert "is at revision" in capsys.readouterr().out
    assert (tmp_path / "data" / "edigate.sqlite3").exists()


def test_migrate_command_migrates_postgresql_named_by_settings(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDIGATE_DATABASE_URL", pg_url)
    monkeypatch.setenv("EDIGATE_DATABASE_SCHEMA", pg_schema)
    args = _parse(["migrate"])
    assert args.handler(args) == 0
    database = Database.from_url(pg_url, schema=pg_schema)
    try:
        assert current_revision(database) == head_revision()
        assert schema_differences(database) == []
    finally:
        database.dispose()


def test_external_database_behind_head_is_not_opened(pg_url: str, pg_schema: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=pg_url, database_schema=pg_schema)
    with pytest.raises(MigrationError, match="edigate migrate"):
        open_database(settings)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edigate")
    store_commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)
