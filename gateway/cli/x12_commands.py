"""``edigate translate | generate | validate``: X12 work that needs no server."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.json_input import load_json

if TYPE_CHECKING:
    from partner_profiles.schema import PartnerProfile
    from translators.pipeline import TranslationReport
    from translators.settings import TranslationSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the translate, generate and validate commands."""
    p = subparsers.add_parser("translate", help="X12 → canonical JSON report (no server needed)")
    p.add_argument("file", help="X12 file to translate ('-' for standard input)")
    p.add_argument("--profile", help="partner profile YAML/JSON")
    p.add_argument("--format", choices=["json"], default="json")
    p.add_argument("--no-documents", action="store_true", help="omit canonical documents")
    p.set_defaults(handler=_translate)

    p = subparsers.add_parser("validate", help="readable validation report and the acks it would send")
    p.add_argument("file", help="X12 file to validate ('-' for standard input)")
    p.add_argument("--profile", help="partner profile YAML/JSON")
    p.set_defaults(handler=_validate)

    p = subparsers.add_parser("generate", help="canonical JSON → X12 for a partner")
    p.add_argument("file", help="canonical JSON document, or a JSON list of them")
    p.add_argument("--profile", required=True, help="partner profile YAML/JSON")
    p.add_argument("--control-number", type=int, default=1,
                   help="first ISA13/GS06/ST02 to use (default 1)")
    p.add_argument("-o", "--output", help="write X12 here instead of standard output")
    p.set_defaults(handler=_generate)


def _fail(message: str) -> int:
    print(f"edigate: {message}", file=sys.stderr)
    return 2


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def _load_profile(path: str | None) -> PartnerProfile | None:
    if path is None:
        return None
    from partner_profiles.schema import parse_profile

    return parse_profile(Path(path).read_bytes())


def _settings(profile: PartnerProfile | None) -> TranslationSettings:
    from translators.settings import TranslationSettings

    return profile.translation_settings() if profile else TranslationSettings()


def _run_translation(args: argparse.Namespace) -> TranslationReport | int:
    from partner_profiles.schema import ProfileError
    from translators.pipeline import AckContext, counter_from, translate

    try:
        profile = _load_profile(args.profile)
    except (OSError, ProfileError) as exc:
        return _fail(f"cannot use profile {args.profile}: {exc}")
    try:
        data = _read_input(args.file)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    acks = AckContext(now=datetime.now(), next_control_number=counter_from(1))
    return translate(data, _settings(profile), acks=acks)


def _translate(args: argparse.Namespace) -> int:
    report = _run_translation(args)
    if isinstance(report, int):
        return report
    data = report.to_dict()
    if args.no_documents:
        for interchange in data["interchanges"]:
            for group in interchange["groups"]:
                for txn in group["transactions"]:
                    txn.pop("document", None)
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0 if report.accepted else 1


def _issue_line(issue: dict[str, Any], indent: str) -> str:
    where = []
    if issue.get("segment_tag"):
        where.append(f"{issue['segment_tag']}"
                     + (f"#{issue['segment_position']}" if issue.get("segment_position") else ""))
    if issue.get("element_position"):
        where.append(f"element {issue['element_position']:02d}"
                     + (f".{issue['component_position']}" if issue.get("component_position") else ""))
    if issue.get("offset") is not None:
        where.append(f"byte {issue['offset']}")
    location = f" ({', '.join(where)})" if where else ""
    label = f"{issue['severity'].upper()} [{issue['level']} {issue['code']}]"
    return f"{indent}{label} {issue['message']}{location}"


def _validate(args: argparse.Namespace) -> int:
    report = _run_translation(args)
    if isinstance(report, int):
        return report
    data = report.to_dict()
    out: list[str] = []
    for issue in data["errors"] + data["warnings"]:
        out.append(_issue_line(issue, ""))
    for ix in data["interchanges"]:
        out.append(f"Interchange {ix['control_number']} {ix['sender']['id']} → {ix['receiver']['id']} "
                   f"(ISA12 {ix['version']}, {ix['usage']}): {ix['status'].upper()}")
        out.extend(_issue_line(i, "  ") for i in ix["errors"] + ix["warnings"])
        for group in ix["groups"]:
            out.append(f"  Group {group['functional_id']} {group['control_number']} "
                       f"(GS08 {group['version']}): {group['status'].upper()}")
            out.extend(_issue_line(i, "    ") for i in group["errors"] + group["warnings"])
            for txn in group["transactions"]:
                out.append(f"    Set {txn['set']} {txn['control_number']} "
                           f"({txn['document_type'] or 'unknown'}): {txn['status'].upper()}")
                out.extend(_issue_line(i, "      ") for i in txn["errors"] + txn["warnings"])
    acks = data["acknowledgments"]
    out.append("")
    out.append(f"Acknowledgments it would send: {len(acks) or 'none'}")
    for ack in acks:
        out.append(ack.rstrip("\n"))
    out.append("")
    out.append("RESULT: " + ("accepted" if report.accepted else "rejected"))
    print("\n".join(out))
    return 0 if report.accepted else 1


def _generate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from partner_profiles.schema import ProfileError
    from translators.canonical import parse_document
    from translators.errors import MappingError
    from translators.generate import GenerationError, generate_interchange

    try:
        profile = _load_profile(args.profile)
    except (OSError, ProfileError) as exc:
        return _fail(f"cannot use profile {args.profile}: {exc}")
    assert profile is not None
    try:
        raw = load_json(_read_input(args.file))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")
    except ValueError as exc:
        return _fail(f"{args.file} is not JSON: {exc}")
    items = raw if isinstance(raw, list) else [raw]
    try:
        documents = [parse_document(item) for item in items]
    except (ValidationError, ValueError, TypeError) as exc:
        return _fail(f"{args.file} is not a canonical document: {exc}")
    start = args.control_number
    try:
        text = generate_interchange(documents, profile.translation_settings(), now=datetime.now(),
                                    interchange_control=start, group_control=start,
                                    transaction_control=start)
    except (MappingError, GenerationError) as exc:
        print(f"edigate generate: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8", newline="")
    else:
        sys.stdout.write(text)
    return 0
