"""Structured X12 problems and the exception hierarchy.

Every problem the reader or validator finds is an :class:`X12Issue` that carries the
code an acknowledgment needs at its level (TA105 for an interchange, AK905 for a group,
AK502/IK502 for a set, AK304/IK304 for a segment, AK403/IK403 for an element) and the
position of the problem, so 997/999/TA1 builders can copy it without re-deriving it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """Where in the X12 structure a problem sits; decides which acknowledgment carries it."""

    INPUT = "input"  # before any interchange (no ISA at all, garbage before the ISA)
    INTERCHANGE = "interchange"  # TA1 note code (TA105)
    GROUP = "group"  # AK905 / 999 AK905
    TRANSACTION = "transaction"  # AK502 / IK502
    SEGMENT = "segment"  # AK304 / IK304
    ELEMENT = "element"  # AK403 / IK403


class Severity(StrEnum):
    """An error rejects the structure it sits in; a warning is reported and tolerated."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class X12Issue:
    """One problem found in X12 input, positioned and coded for acknowledgments."""

    level: Level
    code: str
    message: str
    severity: Severity = Severity.ERROR
    offset: int | None = None  # byte offset of the offending segment in the input
    interchange_index: int | None = None  # 1-based interchange number in the input
    interchange_control: str | None = None  # ISA13
    group_control: str | None = None  # GS06
    transaction_control: str | None = None  # ST02
    segment_tag: str | None = None  # AK301 / IK301
    segment_position: int | None = None  # AK302 / IK302: position in the set, ST = 1
    loop_id: str | None = None  # AK303 / IK303
    element_position: int | None = None  # AK401-1 / IK401-1
    component_position: int | None = None  # AK401-2 / IK401-2
    repetition: int | None = None  # AK401-3 / IK401-3 (005010 and later)
    element_reference: str | None = None  # AK402 / IK402: data element reference number
    bad_value: str | None = None  # AK404 / IK404: copy of the bad data element

    @property
    def is_error(self) -> bool:
        """True when the issue rejects the structure it belongs to."""
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """The issue as a JSON-ready dict without empty fields."""
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()
                if v is not None}


class X12Error(Exception):
    """Base class of every error the translators raise."""

    def __init__(self, issue: X12Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


class X12SyntaxError(X12Error):
    """The input cannot be tokenised as X12 (no ISA, a garbled ISA, bad delimiters)."""


class EnvelopeError(X12Error):
    """An ISA/GS/ST envelope is broken: missing trailer, wrong count, mismatched control number."""


class ValidationError(X12Error):
    """A transaction set breaks its schema or the partner's rules."""

    def __init__(self, issues: list[X12Issue]) -> None:
        super().__init__(issues[0])
        self.issues = issues


class MappingError(Exception):
    """A canonical document cannot be mapped to or from X12 (a field the map needs is missing)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- Code tables the acknowledgments use -------------------------------------------------

class TA1Note:
    """TA105 interchange note codes (X12.5, ISA/IEA syntax)."""

    NO_ERROR = "000"
    CONTROL_NUMBER_MISMATCH = "001"  # ISA13 and IEA02 differ
    STANDARD_NOT_SUPPORTED = "002"
    VERSION_NOT_SUPPORTED = "003"
    INVALID_SEGMENT_TERMINATOR = "004"
    INVALID_SENDER_QUALIFIER = "005"
    INVALID_SENDER_ID = "006"
    INVALID_RECEIVER_QUALIFIER = "007"
    INVALID_RECEIVER_ID = "008"
    UNKNOWN_RECEIVER_ID = "009"
    INVALID_AUTH_QUALIFIER = "010"
    INVALID_AUTH_VALUE = "011"
    INVALID_SECURITY_QUALIFIER = "012"
    INVALID_SECURITY_VALUE = "013"
    INVALID_DATE = "014"
    INVALID_TIME = "015"
    INVALID_STANDARDS_ID = "016"
    INVALID_VERSION_ID = "017"
    INVALID_CONTROL_NUMBER = "018"
    INVALID_ACK_REQUESTED = "019"
    INVALID_TEST_INDICATOR = "020"
    INVALID_GROUP_COUNT = "021"
    INVALID_CONTROL_STRUCTURE = "022"
    PREMATURE_END = "023"
    INVALID_CONTENT = "024"
    DUPLICATE_CONTROL_NUMBER = "025"
    INVALID_ELEMENT_SEPARATOR = "026"
    INVALID_COMPONENT_SEPARATOR = "027"


class GroupError:
    """AK905 functional group syntax error codes."""

    NOT_SUPPORTED = "1"
    VERSION_NOT_SUPPORTED = "2"
    TRAILER_MISSING = "3"
    CONTROL_NUMBER_MISMATCH = "4"  # GS06 and GE02 differ
    SET_COUNT_MISMATCH = "5"  # GE01 wrong
    CONTROL_NUMBER_SYNTAX = "6"
    DUPLICATE_CONTROL_NUMBER = "19"  # GS06 repeated inside one interchange (X12 5010 code 19)


class SetError:
    """AK502 / IK502 transaction set syntax error codes."""

    NOT_SUPPORTED = "1"
    TRAILER_MISSING = "2"
    CONTROL_NUMBER_MISMATCH = "3"  # ST02 and SE02 differ
    SEGMENT_COUNT_MISMATCH = "4"  # SE01 wrong
    SEGMENTS_IN_ERROR = "5"
    MISSING_OR_INVALID_SET_ID = "6"
    MISSING_OR_INVALID_CONTROL_NUMBER = "7"
    CONTROL_NUMBER_NOT_UNIQUE = "23"  # ST02 repeated inside one group
    IMPLEMENTATION_ONE_OR_MORE_SEGMENTS = "I5"  # 999 only


class SegmentError:
    """AK304 / IK304 segment syntax error codes."""

    UNRECOGNIZED_SEGMENT = "1"
    UNEXPECTED_SEGMENT = "2"
    MANDATORY_SEGMENT_MISSING = "3"
    LOOP_OVER_MAXIMUM = "4"
    SEGMENT_OVER_MAXIMUM_USE = "5"
    NOT_IN_DEFINED_SET = "6"
    NOT_IN_SEQUENCE = "7"
    HAS_ELEMENT_ERRORS = "8"


class WarningCode:
    """Codes of our own warnings: observations reported to people, never in an acknowledgment."""

    VERSION_FALLBACK = "version-fallback"  # validated against another version's schema
    HIERARCHY = "hierarchy"  # HL01/HL02 do not form a tree (an HL id twice, a parent unseen)


class ElementError:
    """AK403 / IK403 data element syntax error codes."""

    MANDATORY_MISSING = "1"
    CONDITIONAL_MISSING = "2"
    TOO_MANY_ELEMENTS = "3"
    TOO_SHORT = "4"
    TOO_LONG = "5"
    INVALID_CHARACTER = "6"
    INVALID_CODE = "7"
    INVALID_DATE = "8"
    INVALID_TIME = "9"
    EXCLUSION_VIOLATED = "10"
    TOO_MANY_REPETITIONS = "12"
    TOO_MANY_COMPONENTS = "13"
