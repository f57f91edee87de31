"""What the pipeline found in one inbound interchange, and the statuses an acknowledgment reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from translators.errors import Level, SetError, X12Issue
from translators.x12.model import GroupHeader, InterchangeHeader


class AckCode:
    """AK501/IK501, AK901 and TA104 status codes."""

    ACCEPTED = "A"
    ACCEPTED_WITH_ERRORS = "E"  # accepted, but errors (our warnings) were noted
    PARTIALLY_ACCEPTED = "P"  # AK901 only: at least one set was rejected
    REJECTED = "R"


FUNCTIONAL_ACK_SETS = frozenset({"997", "999"})
TA1_NO_ERROR = "000"
MAX_CODES = 5  # AK502..AK506, AK905..AK909


@dataclass(frozen=True, slots=True)
class TransactionOutcome:
    """One received transaction set and every problem found in it (set, segment, element)."""

    set_id: str  # ST01
    control_number: str  # ST02
    implementation_reference: str = ""  # ST03
    issues: list[X12Issue] = field(default_factory=list)
    business_unit: tuple[str, str] | None = None  # 999 CTX, e.g. ("CLM01", claim id)


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """One received functional group: its header, its sets and its own (GS/GE) problems."""

    header: GroupHeader
    transactions: list[TransactionOutcome] = field(default_factory=list)
    issues: list[X12Issue] = field(default_factory=list)
    trailer_count: int | None = None  # GE01 as received; None when the GE is missing

    @property
    def is_functional_ack(self) -> bool:
        """True for a group of 997/999 sets, which is never acknowledged itself."""
        return self.header.functional_id == "FA" or any(
            t.set_id in FUNCTIONAL_ACK_SETS for t in self.transactions)


@dataclass(frozen=True, slots=True)
class InterchangeOutcome:
    """One received interchange: its ISA, its groups, its own (ISA/IEA) problems and TA1 count."""

    header: InterchangeHeader
    groups: list[GroupOutcome] = field(default_factory=list)
    issues: list[X12Issue] = field(default_factory=list)
    ta1_count: int = 0  # TA1 segments carried between ISA and the first GS

    @property
    def carries_only_ta1(self) -> bool:
        """True for an interchange of TA1s only, which is never answered by a TA1."""
        return self.ta1_count > 0 and not self.groups


def unique_codes(codes: Iterable[str], limit: int = MAX_CODES) -> list[str]:
    """Codes without repeats, in first-seen order, at most ``limit`` of them."""
    out: list[str] = []
    for code in codes:
        if code and code not in out:
            out.append(code)
    return out[:limit]


def _status(issues: Iterable[X12Issue]) -> str:
    listed = list(issues)
    if any(i.is_error for i in listed):
        return AckCode.REJECTED
    return AckCode.ACCEPTED_WITH_ERRORS if listed else AckCode.ACCEPTED


def _set_issues(outcome: TransactionOutcome) -> list[X12Issue]:
    levels = (Level.TRANSACTION, Level.SEGMENT, Level.ELEMENT)
    return [i for i in outcome.issues if i.level in levels]


def transaction_status(outcome: TransactionOutcome) -> str:
    """AK501/IK501: R when any error, E when only warnings, else A."""
    return _status(_set_issues(outcome))


def transaction_codes(outcome: TransactionOutcome, *, implementation: bool = False) -> list[str]:
    """AK502..AK506: the set's own codes, then 5 (or I5 in a 999) for segment/element problems.

    ``implementation`` allows I5 when every segment/element problem is an implementation
    (I-prefixed) code.
    """
    issues = _set_issues(outcome)
    codes = [i.code for i in issues if i.level is Level.TRANSACTION]
    detail = [i for i in issues if i.level in (Level.SEGMENT, Level.ELEMENT)]
    if detail:
        only_impl = all(i.code.startswith("I") for i in detail)
        codes.append(SetError.IMPLEMENTATION_ONE_OR_MORE_SEGMENTS
                     if implementation and only_impl else SetError.SEGMENTS_IN_ERROR)
    return unique_codes(codes)


def group_issues(outcome: GroupOutcome) -> list[X12Issue]:
    """The group's own problems, including group-level ones the pipeline filed under a set."""
    nested = [i for t in outcome.transactions for i in t.issues if i.level is Level.GROUP]
    return [*(i for i in outcome.issues if i.level is Level.GROUP), *nested]


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """AK901..AK905: the group status, the three counts and the group error codes."""

    status: str
    included: int  # AK902: GE01, or the sets counted when the GE is missing
    received: int  # AK903
    accepted: int  # AK904
    codes: list[str]  # AK905..AK909


def group_counts(outcome: GroupOutcome) -> GroupCounts:
    """AK9 for a group: R when the GS/GE is in error, else derived from the set statuses."""
    own = group_issues(outcome)
    statuses = [transaction_status(t) for t in outcome.transactions]
    accepted = sum(1 for s in statuses if s != AckCode.REJECTED)
    received = len(statuses)
    included = outcome.trailer_count if outcome.trailer_count is not None else received
    codes = unique_codes(i.code for i in own)
    if any(i.is_error for i in own):
        return GroupCounts(AckCode.REJECTED, included, received, 0, codes)
    if received and accepted == 0:
        status = AckCode.REJECTED
    elif accepted < received:
        status = AckCode.PARTIALLY_ACCEPTED
    elif own or AckCode.ACCEPTED_WITH_ERRORS in statuses:
        status = AckCode.ACCEPTED_WITH_ERRORS
    else:
        status = AckCode.ACCEPTED
    return GroupCounts(status, included, received, accepted, codes)


def interchange_status(outcome: InterchangeOutcome) -> tuple[str, str]:
    """TA104 and TA105: R with the first error's note, E with the first warning's, else A/000."""
    own = [i for i in outcome.issues if i.level is Level.INTERCHANGE]
    errors = [i for i in own if i.is_error]
    if errors:
        return AckCode.REJECTED, errors[0].code
    if own:
        notes = [i.code for i in own if i.code != TA1_NO_ERROR]
        return AckCode.ACCEPTED_WITH_ERRORS, notes[0] if notes else TA1_NO_ERROR
    return AckCode.ACCEPTED, TA1_NO_ERROR
