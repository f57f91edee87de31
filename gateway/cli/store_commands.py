"""Store commands: ``migrate``, ``archive verify``, ``config`` and ``keys create``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.settings import Settings, SettingsError, mask_url
from translators import engine_build


def register(subparsers: Any) -> None:
    """Add the store commands to the ``edigate`` parser."""
    migrate = subparsers.add_parser("migrate", help="upgrade the database schema to the newest")
    _add_data_dir(migrate)
    migrate.set_defaults(handler=run_migrate)

    archive = subparsers.add_parser("archive", help="archive maintenance")
    archive_commands = archive.add_subparsers(dest="archive_command", metavar="SUBCOMMAND")
    archive_commands.required = True
    verify = archive_commands.add_parser(
        "verify", help="re-hash every archived blob and walk the event chain"
    )
    _add_data_dir(verify)
    verify.set_defaults(handler=run_archive_verify)

    config = subparsers.add_parser("config", help="print the effective settings, secrets masked")
    _add_data_dir(config)
    config.set_defaults(handler=run_config)

    keys = subparsers.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    key_commands.required = True
    create = key_commands.add_parser("create", help="create an API key and print it once")
    create.add_argument("--role", required=True, choices=["admin", "onboarding", "erp", "auditor"])
    create.add_argument("--name", required=True, help="who or what the key is for")
    _add_data_dir(create)
    create.set_defaults(handler=run_keys_create)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data directory (default: ./edigate-data)"
    )


def _settings(args: argparse.Namespace) -> Settings | None:
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        print(f"edigate: invalid settings: {exc}", file=sys.stderr)
        return None


def run_migrate(args: argparse.Namespace) -> int:
    """Upgrade the database to the newest schema."""
    from gateway.store.db import Database
    from gateway.store.migrate import current_revision, upgrade_to_head

    settings = _settings(args)
    if settings is None:
        return 2
    database = Database.from_settings(settings)
    try:
        upgrade_to_head(database)
        revision = current_revision(database)
    finally:
        database.dispose()
    print(f"{mask_url(settings.effective_database_url())} is at revision {revision}")
    return 0


def run_archive_verify(args: argparse.Namespace) -> int:
    """Re-hash every blob the database references and walk the event chain; 1 if broken."""
    from gateway.archive.blob_store import BlobStore
    from gateway.archive.verify import verify_archive
    from gateway.store.migrate import MigrationError, open_database

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        database = open_database(settings)
    except MigrationError as exc:
        print(f"edigate archive verify: {exc}", file=sys.stderr)
        return 1
    try:
        report = verify_archive(database, BlobStore(settings.archive_dir()))
    finally:
        database.dispose()
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def run_config(args: argparse.Namespace) -> int:
    """Print the effective settings as JSON, secrets masked."""
    settings = _settings(args)
    if settings is None:
        return 2
    from gateway.cli.server_commands import process_settings

    shown = settings.masked() | {"processes": process_settings(), "x12_engine": engine_build()}
    print(json.dumps(shown, indent=2))
    return 0


def run_keys_create(args: argparse.Namespace) -> int:
    """Create an API key; the key is printed once, as the last word of the output."""
    from gateway.store.api_keys import create_api_key
    from gateway.store.enums import ApiKeyRole
    from gateway.store.migrate import MigrationError, open_database

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        database = open_database(settings)
    except MigrationError as exc:
        print(f"edigate keys create: {exc}", file=sys.stderr)
        return 1
    try:
        with database.unit_of_work() as session:
            row, key = create_api_key(session, name=args.name, role=ApiKeyRole(args.role))
    finally:
        database.dispose()
    print(
        f"created {row.role.value} key {row.name!r} (id {row.id}); store it now, it is not shown again: {key}"
    )
    return 0
