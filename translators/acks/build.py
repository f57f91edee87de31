"""Build TA1, 997 and 999 acknowledgments for what the pipeline found in an inbound interchange."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from translators.acks.outcome import (
    AckCode,
    GroupOutcome,
    InterchangeOutcome,
    TransactionOutcome,
    group_counts,
    interchange_status,
    transaction_codes,
    transaction_status,
    unique_codes,
)
from translators.errors import Level, X12Issue
from translators.settings import AcknowledgmentSettings
from translators.x12.model import Delimiters, InterchangeHeader
from translators.x12.writer import (
    Element,
    GroupEnvelope,
    InterchangeEnvelope,
    SegmentSpec,
    format_group,
    format_interchange,
    format_segment,
    format_transaction,
)

AckKind = Literal["TA1", "997", "999"]
ControlNumbers = Callable[[str], int]  # kind ("interchange", "group", "transaction") -> number

ACK_999_VERSION = "005010X231A1"  # the 999's own implementation convention for 005010
ACK_997_HIPAA_VERSION = "005010X230"  # the 997's for groups under a 005010X... guide
MAX_ELEMENT_NOTES = 99  # AK4/IK4 per AK3/IK3

# A 997 has no implementation (I-) codes; report the nearest syntax code instead.
_997_SEGMENT_CODES = {"I4": "2", "I6": "3", "I7": "3", "I8": "3", "I9": "2"}
_997_ELEMENT_CODES = {"I6": "7", "I9": "2", "I10": "10", "I11": "1", "I12": "6", "I13": "10"}
_997_SET_CODES = {"I5": "5", "I6": "1"}
# Codes added in 005010 (AK905 19 means an S1E security error before it; AK403 12/13 are new).
_PRE_5010_GROUP_CODES = {"19": "6"}
_PRE_5010_ELEMENT_CODES = {"12": "3", "13": "3"}


@dataclass(frozen=True, slots=True)
class Acknowledgment:
    """One complete interchange to send back, and what it acknowledges."""

    kind: AckKind
    text: str
    status: str  # TA104, or AK901 of the 997/999
    interchange_control_number: int  # our ISA13
    acknowledged_interchange: str  # the inbound ISA13
    group_control_number: int | None = None  # our GS06 (997/999)
    acknowledged_group: str | None = None  # the inbound GS06 (997/999)
    transaction_control_number: str | None = None  # our ST02 (997/999)


# --- version helpers ----------------------------------------------------------------------

_GS08 = re.compile(r"[0-9A-Za-z]{1,12}")


def base_version(version: str) -> str:
    """The six-digit release of a GS08 (``004010`` of ``004010VICS``), or '' when it has none."""
    match = re.match(r"\d{6}", version.strip())
    return match.group(0) if match else ""


def is_5010_or_later(version: str) -> bool:
    """True for GS08 values from release 005010 on."""
    base = base_version(version)
    return bool(base) and base >= "005010"


def choose_ack_kind(
    group_version: str, settings: AcknowledgmentSettings,
) -> Literal["997", "999"] | None:
    """997 or 999 for a group of this GS08 (after settings.version), or None for type=none."""
    if settings.type == "none":
        return None
    if settings.type in ("997", "999"):
        return settings.type
    return "999" if is_5010_or_later(settings.version or group_version) else "997"


def ack_version(kind: Literal["997", "999"], group_version: str, override: str | None) -> str:
    """GS08 of the acknowledgment: the override, else the 999/997 convention for the group."""
    if override:
        return override
    base = base_version(group_version)
    if kind == "999":
        return ACK_999_VERSION if not base or base <= "005010" else base
    if base == "005010" and group_version.strip()[6:7] == "X":
        return ACK_997_HIPAA_VERSION
    # Mirror a well-formed GS08 only: a garbled one may even hold the reply's delimiters.
    return group_version.strip() if _GS08.fullmatch(group_version.strip()) else "004010"


# --- value hygiene ------------------------------------------------------------------------

def _clean(value: str | None, delimiters: Delimiters, max_len: int) -> str:
    """A value safe to write: delimiters and control characters removed, trimmed, capped."""
    if not value:
        return ""
    reserved = delimiters.all()
    text = "".join(ch for ch in value if ch not in reserved and ch.isprintable())
    return text.strip()[:max_len]


def _number(value: int | None) -> str:
    return str(value) if value is not None and value > 0 else ""


# --- envelopes ----------------------------------------------------------------------------

_FALLBACK_DELIMITERS = {"element": "*|", "component": ">:<", "repetition": "^!", "segment": "~|"}


def _reply_delimiters(header: InterchangeHeader) -> Delimiters:
    """The inbound's delimiters; a non-ASCII one (e.g. U+2026) is replaced by an ASCII default."""
    d = header.delimiters
    chosen = {"element": d.element, "component": d.component, "repetition": d.repetition,
              "segment": d.segment}
    for name, value in chosen.items():
        if value is None or value.isascii():
            continue
        taken = {v for v in chosen.values() if v}
        chosen[name] = next(c for c in _FALLBACK_DELIMITERS[name] if c not in taken)
    element = chosen["element"] or "*"
    component = chosen["component"] or ">"
    segment = chosen["segment"] or "~"
    suffix = "" if segment in "\r\n" else d.suffix
    return Delimiters(element, component, chosen["repetition"], segment, suffix)


def _reply_interchange(header: InterchangeHeader, now: datetime, control_number: int
                       ) -> InterchangeEnvelope:
    """ISA mirroring the inbound one: ids and qualifiers swapped, same ISA12 and usage."""
    version = header.version if re.fullmatch(r"\d{5}", header.version or "") else "00401"
    return InterchangeEnvelope(
        sender_qualifier=header.receiver_qualifier.strip().ljust(2)[:2],
        sender_id=header.receiver_id.strip(),
        receiver_qualifier=header.sender_qualifier.strip().ljust(2)[:2],
        receiver_id=header.sender_id.strip(),
        date=now.strftime("%y%m%d"),
        time=now.strftime("%H%M"),
        control_number=control_number,
        version=version,
        ack_requested=False,  # never ask for a TA1 to an acknowledgment
        usage=header.usage if header.usage in ("P", "T", "I") else "P",
    )


# --- TA1 ----------------------------------------------------------------------------------

def ta1_segment(header: InterchangeHeader, note_code: str, ack_code: str,
                delimiters: Delimiters) -> str:
    """The TA1 answering ``header``: TA101 ISA13, TA102 ISA09, TA103 ISA10, TA104, TA105."""
    control = header.control_number.strip()
    if control.isdigit():
        control = control.zfill(9)
    return format_segment("TA1", [
        _clean(control, delimiters, 9), _clean(header.date, delimiters, 6),
        _clean(header.time, delimiters, 4), ack_code, note_code.zfill(3),
    ], delimiters)


def build_ta1(
    header: InterchangeHeader, note_code: str, *, now: datetime,
    next_control_number: ControlNumbers, ack_code: str | None = None,
) -> Acknowledgment:
    """An interchange holding one TA1 (IEA01 = 0); TA104 is A for note 000, else R by default."""
    code = ack_code or (AckCode.ACCEPTED if note_code == "000" else AckCode.REJECTED)
    delimiters = _reply_delimiters(header)
    isa13 = next_control_number("interchange")
    env = _reply_interchange(header, now, isa13)
    ta1 = ta1_segment(header, note_code, code, delimiters)
    text = format_interchange(env, [], delimiters, extra_segments=[ta1])
    return Acknowledgment("TA1", text, code, isa13, header.control_number)


# --- 997 / 999 body -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Dialect:
    kind: Literal["997", "999"]
    v5010: bool  # the acknowledgment's own version is 005010 or later

    @property
    def seg_tag(self) -> str:
        return "IK3" if self.kind == "999" else "AK3"

    @property
    def elem_tag(self) -> str:
        return "IK4" if self.kind == "999" else "AK4"

    @property
    def set_tag(self) -> str:
        return "IK5" if self.kind == "999" else "AK5"

    def segment_code(self, code: str) -> str:
        return _997_SEGMENT_CODES.get(code, code) if self.kind == "997" else code

    def element_code(self, code: str) -> str:
        if self.kind == "997":
            code = _997_ELEMENT_CODES.get(code, code)
        return code if self.v5010 else _PRE_5010_ELEMENT_CODES.get(code, code)

    def set_code(self, code: str) -> str:
        return _997_SET_CODES.get(code, code) if self.kind == "997" else code

    def group_code(self, code: str) -> str:
        return code if self.v5010 else _PRE_5010_GROUP_CODES.get(code, code)


def _element_note(issue: X12Issue, dialect: _Dialect, delimiters: Delimiters
                  ) -> SegmentSpec | None:
    if not issue.element_position:
        return None
    position: list[str] = [str(issue.element_position), _number(issue.component_position)]
    if dialect.v5010:
        position.append(_number(issue.repetition))
    reference = issue.element_reference or ""
    reference = reference if reference.isdigit() and len(reference) <= 4 else ""
    elements: list[Element] = [
        position, reference, dialect.element_code(issue.code),
        _clean(issue.bad_value, delimiters, 99),
    ]
    return dialect.elem_tag, elements


def _segment_notes(outcome: TransactionOutcome, dialect: _Dialect, delimiters: Delimiters
                   ) -> list[SegmentSpec]:
    """AK3/AK4 (997) or IK3/CTX/IK4 (999) for the set's segment and element problems."""
    by_segment: dict[tuple[int, str], list[X12Issue]] = {}
    for issue in outcome.issues:
        if issue.level not in (Level.SEGMENT, Level.ELEMENT):
            continue
        if not issue.segment_tag or not issue.segment_position:
            continue  # AK301/AK302 are mandatory; the AK5 code still reports the problem
        by_segment.setdefault((issue.segment_position, issue.segment_tag), []).append(issue)
    loop_limit = 6 if dialect.kind == "999" else 4
    out: list[SegmentSpec] = []
    for (position, tag), issues in sorted(by_segment.items(), key=lambda kv: kv[0][0]):
        seg_codes = [dialect.segment_code(i.code) for i in issues if i.level is Level.SEGMENT]
        elements = [i for i in issues if i.level is Level.ELEMENT]
        if not seg_codes:
            seg_codes = ["8"]
        loop = next((i.loop_id for i in issues if i.loop_id), "") or ""
        loop = loop if len(loop) <= loop_limit else ""
        for n, code in enumerate(unique_codes(seg_codes, limit=len(seg_codes))):
            out.append((dialect.seg_tag, [
                _clean(tag, delimiters, 3), str(position), _clean(loop, delimiters, loop_limit),
                code,
            ]))
            if dialect.kind == "999" and outcome.business_unit:
                name, value = outcome.business_unit
                out.append(("CTX", [[_clean(name, delimiters, 35),
                                     _clean(value, delimiters, 35)]]))
            if n == 0:
                notes = [_element_note(i, dialect, delimiters) for i in elements]
                out.extend([note for note in notes if note][:MAX_ELEMENT_NOTES])
    return out


def functional_ack_body(
    group: GroupOutcome, kind: Literal["997", "999"], version: str, delimiters: Delimiters,
) -> list[SegmentSpec]:
    """The segments between ST and SE of a 997/999 acknowledging ``group``."""
    dialect = _Dialect(kind, is_5010_or_later(version))
    header = group.header
    ak1: list[Element] = [_clean(header.functional_id, delimiters, 2),
                          _clean(header.control_number, delimiters, 9)]
    if dialect.v5010:
        ak1.append(_clean(header.version, delimiters, 12))
    body: list[SegmentSpec] = [("AK1", ak1)]
    for outcome in group.transactions:
        if not outcome.set_id and not outcome.control_number:
            # An ST with neither ST01 nor ST02 cannot be named in an AK2/IK2; AK9 still counts
            # it as received and not accepted, which tells the sender a set went wrong.
            continue
        ak2: list[Element] = [_clean(outcome.set_id, delimiters, 3),
                              _clean(outcome.control_number, delimiters, 9)]
        if dialect.v5010 and outcome.implementation_reference:
            ak2.append(_clean(outcome.implementation_reference, delimiters, 35))
        body.append(("AK2", ak2))
        body.extend(_segment_notes(outcome, dialect, delimiters))
        codes = unique_codes(dialect.set_code(c) for c in
                             transaction_codes(outcome, implementation=kind == "999"))
        body.append((dialect.set_tag, [transaction_status(outcome), *codes]))
    counts = group_counts(group)
    group_codes = unique_codes(dialect.group_code(c) for c in counts.codes)
    body.append(("AK9", [counts.status, str(counts.included), str(counts.received),
                         str(counts.accepted), *group_codes]))
    return body


def _build_functional(
    group: GroupOutcome, kind: Literal["997", "999"], *, now: datetime,
    next_control_number: ControlNumbers, version: str | None,
) -> Acknowledgment:
    header = group.header
    isa = header.interchange
    delimiters = _reply_delimiters(isa)
    gs08 = ack_version(kind, header.version, version)
    isa13 = next_control_number("interchange")
    gs06 = next_control_number("group")
    st02 = f"{next_control_number('transaction'):04d}"
    body = functional_ack_body(group, kind, gs08, delimiters)
    st03 = gs08 if is_5010_or_later(gs08) else ""
    transaction, _ = format_transaction(kind, st02, body, delimiters, st03)
    gs = GroupEnvelope(
        functional_id="FA",
        sender=_clean(header.receiver, delimiters, 15) or isa.receiver_id.strip(),
        receiver=_clean(header.sender, delimiters, 15) or isa.sender_id.strip(),
        date=now.strftime("%Y%m%d"), time=now.strftime("%H%M"),
        control_number=gs06, version=gs08,
    )
    text = format_interchange(_reply_interchange(isa, now, isa13),
                              [format_group(gs, [transaction], delimiters)], delimiters)
    return Acknowledgment(kind, text, group_counts(group).status, isa13, isa.control_number,
                          gs06, header.control_number, st02)


def build_997(group: GroupOutcome, *, now: datetime, next_control_number: ControlNumbers,
              version: str | None = None) -> Acknowledgment:
    """A 997 interchange acknowledging one functional group (AK3/AK4 for the details)."""
    return _build_functional(group, "997", now=now, next_control_number=next_control_number,
                             version=version)


def build_999(group: GroupOutcome, *, now: datetime, next_control_number: ControlNumbers,
              version: str | None = None) -> Acknowledgment:
    """A 999 interchange acknowledging one functional group (IK3/CTX/IK4 for the details)."""
    return _build_functional(group, "999", now=now, next_control_number=next_control_number,
                             version=version)


def _wants_ta1(interchange: InterchangeOutcome, setting: str) -> bool:
    if interchange.carries_only_ta1:
        return False  # never a TA1 answering TA1s
    has_issues = any(i.level is Level.INTERCHANGE for i in interchange.issues)
    if setting == "always":
        return True
    if setting == "on_request":
        return interchange.header.ack_requested.strip() == "1" or has_issues
    if setting == "on_error":
        return has_issues
    return False


def build_acknowledgments(
    interchange: InterchangeOutcome, settings: AcknowledgmentSettings, *, now: datetime,
    next_control_number: ControlNumbers,
) -> list[Acknowledgment]:
    """Every acknowledgment owed for one inbound interchange, each a complete interchange.

    A TA1 first when the ta1 setting asks for one; then one 997/999 per functional group,
    unless the interchange was rejected (TA104 R) or the group itself carries 997/999s.
    """
    out: list[Acknowledgment] = []
    ta1_status, note = interchange_status(interchange)
    if _wants_ta1(interchange, settings.ta1):
        out.append(build_ta1(interchange.header, note, now=now,
                             next_control_number=next_control_number, ack_code=ta1_status))
    if ta1_status == AckCode.REJECTED:
        return out  # the groups of a rejected interchange cannot be acknowledged
    for group in interchange.groups:
        if group.is_functional_ack:
            continue  # never an acknowledgment of an acknowledgment
        kind = choose_ack_kind(group.header.version, settings)
        if kind is None:
            continue
        out.append(_build_functional(group, kind, now=now, next_control_number=next_control_number,
                                     version=settings.version))
    return out

