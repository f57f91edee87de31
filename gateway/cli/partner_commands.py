"""``edigate partners import FILE.yaml | export ID``: profiles from and to YAML files.

Import creates the partner or stores a new version of its profile (nothing when unchanged).
Export prints the current profile with every secret shown as ``"***"``; importing such a
file again keeps the stored secrets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.settings import Settings, SettingsError

EXPORT_HEADER = "# edigate partner profile; secrets are shown as '***' (importing keeps the stored ones)\n"


def register(subparsers: Any) -> None:
    """Add ``partners import`` and ``partners export``."""
    partners = subparsers.add_parser("partners", help="partner profiles")
    commands = partners.add_subparsers(dest="partners_command", metavar="SUBCOMMAND")
    commands.required = True
    importer = commands.add_parser("import", help="create or update a partner from a YAML/JSON profile")
    importer.add_argument("file", type=Path, help="profile file (YAML or JSON)")
    _add_data_dir(importer)
    importer.set_defaults(handler=run_import)
    exporter = commands.add_parser("export", help="print a partner's profile as YAML, secrets masked")
    exporter.add_argument("partner_id", help="the partner's id")
    exporter.add_argument("--version", type=int, default=None, help="an older version (default: current)")
    _add_data_dir(exporter)
    exporter.set_defaults(handler=run_export)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default: EDIGATE_DATA_DIR or ./edigate-data)")


def _settings(args: argparse.Namespace) -> Settings | None:
    overrides: dict[str, Any] = {"data_dir": args.data_dir} if args.data_dir is not None else {}
    try:
        return Settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        print(f"edigate: invalid settings: {exc}", file=sys.stderr)
        return None


def _error(command: str, message: str) -> None:
    print(f"edigate partners {command}: {message}", file=sys.stderr)


def run_import(args: argparse.Namespace) -> int:
    """Create or update a partner from a profile file; 1 when the profile is invalid."""
    from gateway.secrets import SecretBox
    from gateway.store.migrate import MigrationError, open_database
    from partner_profiles.service import PartnerConflict, ProfileRejected, save_profile, validate_profile_data

    try:
        text = args.file.read_bytes()
    except OSError as exc:
        _error("import", f"cannot read {args.file}: {exc.strerror or exc}")
        return 2
    try:
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        _error("import", f"{args.file} is not valid YAML/JSON: {exc}")
        return 1
    try:
        profile = validate_profile_data(data)
    except ProfileRejected as exc:
        _error("import", f"{args.file} is not a valid profile:")
        for problem in exc.problems:
            print(f"  {problem['field']}: {problem['message']}", file=sys.stderr)
        return 1
    settings = _settings(args)
    if settings is None:
        return 2
    try:
        database = open_database(settings)
        box = SecretBox.from_settings(settings)
    except (MigrationError, SettingsError) as exc:
        _error("import", str(exc))
        return 1
    try:
        with database.unit_of_work() as session:
            saved = save_profile(session, profile, box=box, actor="cli")
            partner_id, version = saved.partner.id, saved.version.version
    except (ProfileRejected, PartnerConflict) as exc:
        _error("import", str(exc))
        return 1
    finally:
        database.dispose()
    if saved.created:
        print(f"created partner {partner_id} (version {version})")
    elif saved.changed:
        print(f"updated partner {partner_id} to version {version}")
    else:
        print(f"partner {partner_id} unchanged (version {version})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Print a partner's profile as YAML with secrets masked; 1 when the partner is unknown."""
    from gateway.store.migrate import MigrationError, open_database
    from partner_profiles.service import current_version_row, get_partner, get_version, masked_profile

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        database = open_database(settings)
    except MigrationError as exc:
        _error("export", str(exc))
        return 1
    try:
        with database.unit_of_work(read_only=True) as session:
            partner = get_partner(session, args.partner_id, include_deleted=args.version is not None)
            row = None
            if partner is not None:
                row = (get_version(session, partner.id, args.version) if args.version is not None
                       else current_version_row(session, partner))
            document = masked_profile(row) if row is not None else None
    finally:
        database.dispose()
    if document is None:
        what = f"version {args.version} of partner" if args.version is not None else "partner"
        _error("export", f"no {what} {args.partner_id}")
        return 1
    sys.stdout.write(EXPORT_HEADER)
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return 0
