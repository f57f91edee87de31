"""Read → validate → translate → acknowledge, streamed one transaction set at a time.

:func:`iter_results` is what the gateway's inbound worker and the benchmarks use (nothing but
the current set and small per-group outcomes is held); :func:`translate` collects the same
results into a :class:`TranslationReport` for the command line and profile tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from translators.acks import (
    Acknowledgment,
    GroupOutcome,
    InterchangeOutcome,
    TransactionOutcome,
    build_acknowledgments,
    parse_functional_ack,
    parse_ta1,
)
from translators.canonical import SET_DOCUMENT_TYPES, check_required, parse_document
from translators.errors import Level, MappingError, SetError, Severity, TA1Note, X12Issue
from translators.maps import to_canonical_data
from translators.settings import AcknowledgmentSettings, TranslationSettings
from translators.validation import PartnerRules, rules_from_settings, validate_transaction
from translators.x12.model import (
    GroupEnd,
    GroupHeader,
    InputProblem,
    InterchangeEnd,
    InterchangeHeader,
    TransactionSet,
)
from translators.x12.reader import ReaderLimits, Source, iter_events

FUNCTIONAL_ACK = "functional_acknowledgment"


@dataclass(slots=True)
class TransactionResult:
    """One transaction set after validation and translation.

    A canonical document is kept as ``data`` (JSON-ready, see ``to_canonical_data``) and
    validated into a model only when ``document`` is asked for; a 997/999 is a model."""

    group: GroupHeader
    set_id: str
    control_number: str
    implementation_reference: str
    offset: int
    size: int
    document_type: str | None
    data: dict[str, Any] | None
    issues: list[X12Issue]
    model: BaseModel | None = None

    @property
    def document(self) -> BaseModel | None:
        """The document as a model (a canonical one is validated from ``data`` on first use)."""
        if self.model is None and self.data is not None:
            self.model = parse_document(self.data)
        return self.model

    @property
    def accepted(self) -> bool:
        """True when nothing in the set itself is an error."""
        return not any(i.is_error for i in self.issues)

    def outcome(self) -> TransactionOutcome:
        """The small record the acknowledgment builder needs (errors only, see _errors)."""
        return TransactionOutcome(self.set_id, self.control_number, self.implementation_reference,
                                  _errors(self.issues))


@dataclass(slots=True)
class InterchangeResult:
    """One interchange: its outcome (for acknowledgments), the TA1s it carried, our acks."""

    outcome: InterchangeOutcome
    ta1: list[dict[str, Any]]
    acknowledgments: list[Acknowledgment]

    @property
    def header(self) -> InterchangeHeader:
        """The interchange's ISA."""
        return self.outcome.header


@dataclass(slots=True)
class AckContext:
    """What acknowledgment building needs from outside: a clock reading and control numbers."""

    now: datetime
    next_control_number: Callable[[str], int]


def _errors(issues: list[X12Issue]) -> list[X12Issue]:
    # Warnings are our own observations (tolerated padding, codes we do not list, another
    # version's schema); a partner's acknowledgment reports only what we reject.
    return [i for i in issues if i.is_error]


def counter_from(start: int = 1) -> Callable[[str], int]:
    """A control-number source counting from ``start`` per kind (for the CLI and tests)."""
    counters: dict[str, int] = {}

    def next_number(kind: str) -> int:
        counters[kind] = counters.get(kind, start - 1) + 1
        return counters[kind]

    return next_number


def _translate_set(ts: TransactionSet, settings: TranslationSettings,
                   rules: PartnerRules | None) -> TransactionResult:
    issues = list(ts.issues)
    issues.extend(validate_transaction(ts, rules=rules))
    data: dict[str, Any] | None = None
    model: BaseModel | None = None
    document_type: str | None = None
    try:
        if ts.set_id in ("997", "999"):
            document_type = FUNCTIONAL_ACK
            model = parse_functional_ack(ts)
        else:
            document_type = SET_DOCUMENT_TYPES.get(ts.set_id)
            if document_type is not None:
                data = to_canonical_data(ts, settings.mapping, issues=issues)
                required = settings.mapping.required.get(document_type, [])
                for problem in check_required(data, required) if required else ():
                    issues.append(_set_issue(ts, SetError.SEGMENTS_IN_ERROR,
                                             f"partner rule: {problem}"))
    except MappingError as exc:
        issues.append(_set_issue(ts, SetError.SEGMENTS_IN_ERROR, f"cannot translate: {exc}"))
    return TransactionResult(ts.group, ts.set_id, ts.control_number, ts.implementation_reference,
                             ts.offset, ts.size, document_type, data, issues, model)


def _set_issue(ts: TransactionSet, code: str, message: str) -> X12Issue:
    return X12Issue(Level.TRANSACTION, code, message, Severity.ERROR, offset=ts.offset,
                    interchange_index=ts.group.interchange.index,
                    interchange_control=ts.group.interchange.control_number,
                    group_control=ts.group.control_number, transaction_control=ts.control_number)


def iter_results(
    source: Source,
    settings: TranslationSettings | None = None,
    *,
    acks: AckContext | None = None,
    limits: ReaderLimits | None = None,
) -> Iterator[TransactionResult | InterchangeResult | X12Issue]:
    """Stream results: each set as it completes, each interchange at its end, input problems."""
    settings = settings or TranslationSettings()
    rules = rules_from_settings(settings.mapping)
    ack_settings = settings.envelope.acknowledgment if settings.envelope else AcknowledgmentSettings()
    groups: list[GroupOutcome] = []
    current: list[TransactionOutcome] = []
    for event in iter_events(source, limits):
        if isinstance(event, TransactionSet):
            result = _translate_set(event, settings, rules)
            current.append(result.outcome())
            yield result
        elif isinstance(event, GroupEnd):
            count = int(event.trailer.get(1)) if event.trailer and event.trailer.get(1).isdigit() else None
            groups.append(GroupOutcome(event.header, current, _errors(event.issues), count))
            current = []
        elif isinstance(event, InterchangeEnd):
            ta1, ta1_issues = _parse_ta1s(event)
            issues = [*event.header.issues, *event.issues, *ta1_issues]
            current = []  # sets outside any group were reported at interchange level
            outcome = InterchangeOutcome(event.header, groups, issues, len(event.ta1_segments))
            ack_view = InterchangeOutcome(event.header, groups, _errors(issues), len(event.ta1_segments))
            built: list[Acknowledgment] = []
            if acks is not None:
                built = build_acknowledgments(ack_view, ack_settings, now=acks.now,
                                              next_control_number=acks.next_control_number)
            yield InterchangeResult(outcome, ta1, built)
            groups = []
        elif isinstance(event, InputProblem):
            yield event.issue


def _parse_ta1s(event: InterchangeEnd) -> tuple[list[dict[str, Any]], list[X12Issue]]:
    """The TA1s an interchange carried, and an interchange error for each broken one."""
    parsed: list[dict[str, Any]] = []
    issues: list[X12Issue] = []
    for segment in event.ta1_segments:
        try:
            result = parse_ta1(segment)
        except MappingError as exc:
            parsed.append({"error": str(exc), "segment": [segment.tag, *segment.elements]})
            problems = [str(exc)]
        else:
            parsed.append(dict(result.to_dict()))
            problems = list(result.problems)
        issues.extend(X12Issue(Level.INTERCHANGE, TA1Note.INVALID_CONTENT, f"TA1: {problem}",
                               offset=segment.offset, interchange_index=event.header.index,
                               interchange_control=event.header.control_number, segment_tag="TA1")
                      for problem in problems)
    return parsed, issues


@dataclass(slots=True)
class TranslationReport:
    """Everything one input produced, in the JSON shape of DESIGN.md §4."""

    interchanges: list[tuple[InterchangeResult, list[TransactionResult]]] = field(default_factory=list)
    issues: list[X12Issue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """True when no interchange, group, set or input-level error was found."""
        if any(i.is_error for i in self.issues):
            return False
        for interchange, sets in self.interchanges:
            outcome = interchange.outcome
            if any(i.is_error for i in outcome.issues):
                return False
            if any(i.is_error for g in outcome.groups for i in g.issues):
                return False
            if not all(s.accepted for s in sets):
                return False
        return True

    @property
    def acknowledgments(self) -> list[Acknowledgment]:
        """Every acknowledgment this input would be answered with."""
        return [ack for interchange, _ in self.interchanges for ack in interchange.acknowledgments]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return report_dict(self)


def translate(
    source: Source,
    settings: TranslationSettings | None = None,
    *,
    acks: AckContext | None = None,
    limits: ReaderLimits | None = None,
) -> TranslationReport:
    """Translate a whole input into one report (documents kept in memory)."""
    report = TranslationReport()
    pending: list[TransactionResult] = []
    for item in iter_results(source, settings, acks=acks, limits=limits):
        if isinstance(item, TransactionResult):
            pending.append(item)
        elif isinstance(item, InterchangeResult):
            report.interchanges.append((item, pending))
            pending = []
        else:
            report.issues.append(item)
    return report


# --- JSON shape ---------------------------------------------------------------------------

def _split(issues: list[X12Issue]) -> dict[str, list[dict[str, Any]]]:
    return {
        "errors": [i.to_dict() for i in issues if i.is_error],
        "warnings": [i.to_dict() for i in issues if not i.is_error],
    }


def _status(issues: list[X12Issue], children_ok: bool = True) -> str:
    if any(i.is_error for i in issues):
        return "rejected"
    return "accepted" if children_ok else "partially_accepted"


def report_dict(report: TranslationReport) -> dict[str, Any]:
    """DESIGN.md §4's JSON for a report."""
    interchanges = []
    for interchange, sets in report.interchanges:
        outcome = interchange.outcome
        header = outcome.header
        by_group: dict[int, list[TransactionResult]] = {}
        for s in sets:
            by_group.setdefault(id(s.group), []).append(s)
        groups = []
        for group in outcome.groups:
            members = by_group.get(id(group.header), [])
            transactions = [{
                "set": s.set_id,
                "control_number": s.control_number,
                "document_type": s.document_type,
                "status": "accepted" if s.accepted else "rejected",
                "document": s.document.model_dump(mode="json", exclude_none=True)
                if s.document is not None else None,
                **_split(s.issues),
            } for s in members]
            groups.append({
                "functional_id": group.header.functional_id,
                "control_number": group.header.control_number,
                "version": group.header.version,
                "sender": group.header.sender,
                "receiver": group.header.receiver,
                "status": _status(group.issues, all(s.accepted for s in members)),
                **_split(group.issues),
                "transactions": transactions,
            })
        interchanges.append({
            "sender": {"qualifier": header.sender_qualifier, "id": header.sender_id},
            "receiver": {"qualifier": header.receiver_qualifier, "id": header.receiver_id},
            "control_number": header.control_number,
            "version": header.version,
            "usage": header.usage,
            "status": _status(outcome.issues),
            **_split(outcome.issues),
            "ta1": interchange.ta1,
            "groups": groups,
        })
    return {
        "accepted": report.accepted,
        "interchanges": interchanges,
        **_split(report.issues),
        "acknowledgments": [ack.text for ack in report.acknowledgments],
    }
