"""Stream an archived X12 blob through the translators once and keep what the writer needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from gateway.archive.blob_store import BlobStore
from partner_profiles.schema import PartnerProfile
from translators.acks import InterchangeOutcome
from translators.canonical import to_json_bytes
from translators.errors import Level, Severity, TA1Note, X12Issue
from translators.pipeline import InterchangeResult, TransactionResult, iter_results
from translators.x12.model import InterchangeHeader


@dataclass
class ParsedInterchange:
    """One interchange: its outcome and its sets with their canonical data."""

    result: InterchangeResult
    sets: list[TransactionResult] = field(default_factory=list)
    data: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def outcome(self) -> InterchangeOutcome:
        """The outcome acknowledgments are built from."""
        return self.result.outcome


@dataclass
class ParsedX12:
    """Every interchange of a message and the problems outside any interchange."""

    interchanges: list[ParsedInterchange] = field(default_factory=list)
    input_issues: list[X12Issue] = field(default_factory=list)


def document_data(document: BaseModel) -> dict[str, Any]:
    """A document model as JSON-ready data (fields that are None left out)."""
    loaded: dict[str, Any] = json.loads(to_json_bytes(document))  # type: ignore[arg-type]
    return loaded


def result_data(item: TransactionResult) -> dict[str, Any] | None:
    """An accepted set's document as JSON-ready data; the translators' data when it has it."""
    if not item.accepted:
        return None
    if item.data is not None:
        return item.data
    return document_data(item.model) if item.model is not None else None


def partner_envelope_issues(header: InterchangeHeader, profile: PartnerProfile) -> list[X12Issue]:
    """ISA problems against the profile: wrong sender, unknown receiver, test/production mismatch."""
    envelope = profile.x12
    issues = []

    def issue(code: str, message: str) -> X12Issue:
        return X12Issue(
            Level.INTERCHANGE,
            code,
            message,
            Severity.ERROR,
            offset=header.offset,
            interchange_index=header.index,
            interchange_control=header.control_number,
        )

    if (header.sender_qualifier, header.sender_id) != (
        envelope.interchange_id.qualifier,
        envelope.interchange_id.id,
    ):
        issues.append(
            issue(
                TA1Note.INVALID_SENDER_ID,
                f"ISA06 {header.sender_qualifier}/{header.sender_id} is not partner {profile.id}'s "
                f"{envelope.interchange_id.qualifier}/{envelope.interchange_id.id}",
            )
        )
    if (header.receiver_qualifier, header.receiver_id) != (envelope.our_id.qualifier, envelope.our_id.id):
        issues.append(
            issue(
                TA1Note.UNKNOWN_RECEIVER_ID,
                f"ISA08 {header.receiver_qualifier}/{header.receiver_id} is not our id "
                f"{envelope.our_id.qualifier}/{envelope.our_id.id}",
            )
        )
    if header.usage in ("P", "T") and header.usage != envelope.usage:
        issues.append(
            issue(
                TA1Note.INVALID_TEST_INDICATOR,
                f"ISA15 {header.usage} does not match the partner's status {profile.status} "
                f"({envelope.usage})",
            )
        )
    return issues


def parse_x12(blobs: BlobStore, sha256: str, profile: PartnerProfile) -> ParsedX12:
    """Read the blob once: validate and translate every set, collect interchange outcomes."""
    parsed = ParsedX12()
    sets: list[TransactionResult] = []
    data: list[dict[str, Any] | None] = []
    settings = profile.translation_settings()
    with blobs.open(sha256) as handle:
        for item in iter_results(handle, settings):
            if isinstance(item, TransactionResult):
                sets.append(item)
                data.append(result_data(item))
            elif isinstance(item, InterchangeResult):
                item.outcome.issues.extend(partner_envelope_issues(item.header, profile))
                parsed.interchanges.append(ParsedInterchange(item, sets, data))
                sets, data = [], []
            else:
                parsed.input_issues.append(item)
    return parsed


def describe_issue(issue: X12Issue) -> str:
    """One readable line: where (ISA13/GS06/ST02, segment, element) and what (code, message)."""
    where = []
    if issue.interchange_control:
        where.append(f"ISA13 {issue.interchange_control}")
    if issue.group_control:
        where.append(f"GS06 {issue.group_control}")
    if issue.transaction_control:
        where.append(f"ST02 {issue.transaction_control}")
    if issue.segment_tag:
        segment = issue.segment_tag + (f" #{issue.segment_position}" if issue.segment_position else "")
        where.append(f"segment {segment}")
    if issue.element_position:
        where.append(f"element {issue.element_position}")
    if issue.offset is not None:
        where.append(f"byte {issue.offset}")
    prefix = ", ".join(where) or "input"
    return f"{prefix}: {issue.level.value} {issue.code}: {issue.message}"
