"""``edigate archive verify``, ``keys create`` and ``config`` against an embedded data dir."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select, text

from gateway import cli
from gateway.archive import BlobStore
from gateway.cli import store_commands
from gateway.settings import Settings
from gateway.store.api_keys import authenticate_api_key, hash_api_key
from gateway.store.blobs import record_blob
from gateway.store.db import Database
from gateway.store.events import append_event
from gateway.store.migrate import open_database
from gateway.store.models import ApiKey

pytestmark = pytest.mark.integration


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edigate")
    store_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


@pytest.fixture
def data_dir(embedded_settings: Settings) -> Path:
    return embedded_settings.data_dir


@pytest.fixture
def archived(embedded_settings: Settings) -> tuple[Database, BlobStore, str]:
    """An embedded data dir with one catalogued blob and two events."""
    database = open_database(embedded_settings)
    store = BlobStore(embedded_settings.archive_dir())
    ref = store.put_bytes(b"ISA*00*          *00*          *ZZ*ACME~")
    with database.unit_of_work() as session:
        record_blob(session, ref)
        append_event(session, event_type="message.received", data={"sha256": ref.sha256})
        append_event(session, event_type="message.processed")
    return database, store, ref.sha256


def test_archive_verify_passes_on_an_intact_archive(
    archived: tuple[Database, BlobStore, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["archive", "verify", "--data-dir", str(data_dir)]) == 0
    assert "archive OK: 1 blob(s) re-hashed, 2 event(s)" in capsys.readouterr().out


def test_archive_verify_fails_and_names_a_tampered_blob(
    archived: tuple[Database, BlobStore, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, store, sha256 = archived
    path = store.path_for(sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"ISA*00*          *00*          *ZZ*EVIL~")
    assert _run(["archive", "verify", "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert f"blob {sha256}" in out
    assert "BROKEN" in out


def test_archive_verify_fails_and_names_a_tampered_event(
    archived: tuple[Database, BlobStore, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database, _, _ = archived
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER events_no_update")
        connection.exec_driver_sql("UPDATE events SET event_type = 'forged' WHERE id = 1")
    assert _run(["archive", "verify", "--data-dir", str(data_dir)]) == 1
    assert "event 1: content does not match its hash" in capsys.readouterr().out


def test_archive_verify_reports_a_catalogued_blob_missing_from_disk(
    archived: tuple[Database, BlobStore, str], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, store, sha256 = archived
    store.path_for(sha256).unlink()
    assert _run(["archive", "verify", "--data-dir", str(data_dir)]) == 1
    assert "missing from the archive" in capsys.readouterr().out


def test_keys_create_prints_the_key_last_and_stores_only_its_hash(
    data_dir: Path, embedded_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["keys", "create", "--role", "erp", "--name", "SAP", "--data-dir", str(data_dir)]) == 0
    key = capsys.readouterr().out.split()[-1]
    database = Database.from_settings(embedded_settings)
    try:
        with database.unit_of_work(read_only=True) as session:
            row = authenticate_api_key(session, key)
            assert row is not None
            assert (row.name, row.role.value) == ("SAP", "erp")
            assert session.scalars(select(ApiKey)).one().key_hash == hash_api_key(key)
            assert authenticate_api_key(session, key + "x") is None
            dumped = session.execute(text("SELECT * FROM api_keys")).all()
            assert key not in repr(dumped)
            assert len(session.scalars(select(ApiKey)).all()) == 1
    finally:
        database.dispose()


def test_keys_create_refuses_an_unknown_role(data_dir: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(["keys", "create", "--role", "root", "--name", "x", "--data-dir", str(data_dir)])
    assert exit_info.value.code == 2


def test_config_prints_masked_json(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDIGATE_SECRET_KEY", "a-very-secret-key-material")
    monkeypatch.setenv("EDIGATE_BROKER_URL", "redis://:hunter2@redis:6379/0")
    assert _run(["config", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["broker_url"] == "redis://:********@redis:6379/0"
    assert shown["data_dir"] == str(data_dir.resolve())
    assert "a-very-secret" not in out
    assert "hunter2" not in out


def test_config_shows_the_processes_serve_would_run(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDIGATE_API_WORKERS", "3")
    monkeypatch.setenv("EDIGATE_WORKER_PROCESSES", "2")
    monkeypatch.setenv("EDIGATE_WORKER_CONCURRENCY", "6")
    assert _run(["config", "--data-dir", str(data_dir)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["processes"] == {
        "api_workers": 3, "worker_processes": 2, "worker_pool": "threads", "worker_concurrency": 6
    }
    assert shown["x12_engine"] == "pure Python"  # an editable install is never compiled


def test_config_refuses_an_api_worker_count_that_is_not_a_number(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDIGATE_API_WORKERS", "many")
    assert cli.main(["config", "--data-dir", str(data_dir)]) == 2
    assert "EDIGATE_API_WORKERS" in capsys.readouterr().err
