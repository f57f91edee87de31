"""Read inbound 997/999 and TA1 acknowledgments for reconciliation with what we sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from translators.errors import MappingError
from translators.x12.model import Segment, TransactionSet

_STATUS_OUTCOMES = {
    "A": "accepted",
    "E": "accepted_with_errors",
    "P": "partially_accepted",
    "R": "rejected",
    "M": "rejected",
    "W": "rejected",
    "X": "rejected",
}


_FOREIGN_TAGS = {"997": frozenset({"IK3", "IK4", "IK5"}), "999": frozenset({"AK3", "AK4", "AK5"})}


class AcknowledgmentParseError(MappingError):
    """An inbound acknowledgment is too broken to reconcile; ``field`` names the segment."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_dict(self) -> dict[str, Any]:
        """The parsed acknowledgment as a JSON-ready dict."""
        return self.model_dump(mode="json")


class AckContext(_Model):
    """A 999 CTX: the business unit (CTX01 name:reference) or situational trigger position."""

    name: str  # CTX01-1, e.g. CLM01 or SITUATIONAL TRIGGER
    reference: str = ""  # CTX01-2
    segment_tag: str = ""  # CTX02
    segment_position: int | None = None  # CTX03
    loop_id: str = ""  # CTX04
    element_position: int | None = None  # CTX05-1
    component_position: int | None = None  # CTX05-2
    element_reference: str = ""  # CTX06 as written


class ElementNote(_Model):
    """AK4/IK4: one data element problem."""

    element_position: int | None
    component_position: int | None
    repetition: int | None
    element_reference: str
    code: str
    bad_value: str
    contexts: list[AckContext] = Field(default_factory=list)


class SegmentNote(_Model):
    """AK3/IK3: one segment problem with its element notes."""

    segment_tag: str
    segment_position: int | None
    loop_id: str
    code: str
    contexts: list[AckContext] = Field(default_factory=list)
    elements: list[ElementNote] = Field(default_factory=list)


class SetAck(_Model):
    """AK2..AK5/IK5: the status of one acknowledged transaction set."""

    set_id: str
    control_number: str
    implementation_reference: str
    status: str  # AK501/IK501; '' when the AK5/IK5 is missing
    codes: list[str] = Field(default_factory=list)
    segments: list[SegmentNote] = Field(default_factory=list)


class FunctionalAck(_Model):
    """A parsed 997 or 999: which group it answers, its status, counts and set details."""

    kind: str  # 997 or 999
    control_number: str  # ST02 of the acknowledgment
    functional_id: str  # AK101
    group_control_number: str  # AK102
    version: str  # AK103 ('' before 005010)
    status: str  # AK901
    included: int | None  # AK902
    received: int | None  # AK903
    accepted: int | None  # AK904
    group_codes: list[str] = Field(default_factory=list)  # AK905..AK909
    sets: list[SetAck] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)  # sloppiness that was tolerated

    @property
    def outcome(self) -> str:
        """accepted / accepted_with_errors / partially_accepted / rejected for AK901."""
        return _STATUS_OUTCOMES[self.status]

    def to_dict(self) -> dict[str, Any]:
        """The parsed acknowledgment as a JSON-ready dict, with its reconciliation outcome."""
        return {**self.model_dump(mode="json"), "outcome": self.outcome}


class TA1Result(_Model):
    """A parsed TA1."""

    control_number: str  # TA101: the ISA13 it answers
    date: str  # TA102
    time: str  # TA103
    ack_code: str  # TA104: A, E or R
    note_code: str  # TA105 ('' when absent)
    problems: list[str] = Field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """True unless the interchange was rejected."""
        return self.ack_code != "R"


def _int(value: str, what: str, problems: list[str]) -> int | None:
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    problems.append(f"{what} is not a number: {value!r}")
    return None


def _first(segment: Segment, n: int) -> str:
    """Element ``n`` trimmed, first repetition only."""
    value = segment.get(n).strip()
    if segment.repetition and segment.repetition in value:
        value = value.split(segment.repetition)[0]
    return value


def _position(segment: Segment, n: int, what: str, problems: list[str]
              ) -> tuple[int | None, int | None, int | None]:
    value = _first(segment, n)
    parts = value.split(segment.component) if value else []
    out: list[int | None] = []
    for i in range(3):
        out.append(_int(parts[i], f"{what}-{i + 1}", problems) if i < len(parts) else None)
    return out[0], out[1], out[2]


def _context(segment: Segment, problems: list[str]) -> AckContext:
    name = segment.component_value(1, 1).strip()
    if segment.repetition and segment.repetition in name:
        name = name.split(segment.repetition)[0]
    element, component, _ = _position(segment, 5, "CTX05", problems)
    return AckContext(
        name=name,
        reference=segment.component_value(1, 2).strip(),
        segment_tag=segment.get(2).strip(),
        segment_position=_int(segment.get(3), "CTX03", problems),
        loop_id=segment.get(4).strip(),
        element_position=element,
        component_position=component,
        element_reference=segment.get(6).strip(),
    )


@dataclass
class _OpenElement:
    values: dict[str, Any]
    contexts: list[AckContext] = field(default_factory=list)

    def freeze(self) -> ElementNote:
        return ElementNote(**self.values, contexts=self.contexts)


@dataclass
class _OpenSegment:
    values: dict[str, Any]
    contexts: list[AckContext] = field(default_factory=list)
    elements: list[_OpenElement] = field(default_factory=list)

    def freeze(self) -> SegmentNote:
        return SegmentNote(**self.values, contexts=self.contexts,
                           elements=[e.freeze() for e in self.elements])


@dataclass
class _OpenSet:
    set_id: str
    control_number: str
    implementation_reference: str
    segments: list[_OpenSegment] = field(default_factory=list)
    status: str = ""
    codes: list[str] = field(default_factory=list)
    closed: bool = False

    def freeze(self) -> SetAck:
        return SetAck(set_id=self.set_id, control_number=self.control_number,
                      implementation_reference=self.implementation_reference,
                      status=self.status, codes=self.codes,
                      segments=[s.freeze() for s in self.segments])


def parse_functional_ack(ts: TransactionSet) -> FunctionalAck:
    """A 997 or 999 transaction set as a :class:`FunctionalAck`.

    Tolerates padding, extra elements, repeated values and 997/999 tag mixing (noted in
    ``problems``); raises :class:`AcknowledgmentParseError` when AK1 or AK9 is missing,
    when a segment appears outside the loop it belongs to, or when a status is unknown.
    """
    kind = ts.set_id.strip()
    if kind not in ("997", "999"):
        raise AcknowledgmentParseError(f"transaction set {kind!r} is not a 997 or 999",
                                       field="ST01")
    problems: list[str] = []
    ak1: Segment | None = None
    ak9: Segment | None = None
    sets: list[_OpenSet] = []
    current_segment: _OpenSegment | None = None
    current_element: _OpenElement | None = None

    def fail(message: str, tag: str) -> AcknowledgmentParseError:
        return AcknowledgmentParseError(f"{kind} {ts.control_number}: {message}", field=tag)

    for seg in ts.body:
        tag = seg.tag.strip().upper()
        if tag in _FOREIGN_TAGS[kind]:
            problems.append(f"{tag} at position {seg.position} in a {kind}")
        if tag == "AK1":
            if ak1 is not None:
                raise fail("more than one AK1", tag)
            ak1 = seg
            if len(seg.elements) > 3:
                problems.append("AK1 has extra elements")
            continue
        if ak1 is None:
            raise fail(f"{tag} before AK1", tag)
        if ak9 is not None:
            raise fail(f"{tag} after AK9", tag)
        if tag == "AK2":
            if sets and not sets[-1].closed:
                problems.append(f"AK2 {sets[-1].control_number} has no AK5/IK5")
            if len(seg.elements) > 3:
                problems.append(f"AK2 {seg.get(2).strip()} has extra elements")
            sets.append(_OpenSet(seg.get(1).strip(), seg.get(2).strip(), seg.get(3).strip()))
            current_segment = current_element = None
        elif tag in ("AK3", "IK3"):
            if not sets or sets[-1].closed:
                raise fail(f"{tag} outside an AK2 loop", tag)
            current_segment = _OpenSegment({
                "segment_tag": _first(seg, 1),
                "segment_position": _int(_first(seg, 2), f"{tag}02", problems),
                "loop_id": _first(seg, 3),
                "code": _first(seg, 4),
            })
            current_element = None
            sets[-1].segments.append(current_segment)
        elif tag in ("AK4", "IK4"):
            if current_segment is None or sets[-1].closed:
                raise fail(f"{tag} without a preceding AK3/IK3", tag)
            element, component, repetition = _position(seg, 1, f"{tag}01", problems)
            current_element = _OpenElement({
                "element_position": element, "component_position": component,
                "repetition": repetition, "element_reference": _first(seg, 2),
                "code": _first(seg, 3), "bad_value": seg.get(4),
            })
            current_segment.elements.append(current_element)
        elif tag == "CTX":
            context = _context(seg, problems)
            if current_element is not None:
                current_element.contexts.append(context)
            elif current_segment is not None:
                current_segment.contexts.append(context)
            else:
                problems.append(f"CTX at position {seg.position} outside an IK3/IK4 loop")
        elif tag in ("AK5", "IK5"):
            if not sets or sets[-1].closed:
                raise fail(f"{tag} outside an AK2 loop", tag)
            status = _first(seg, 1)
            if status not in ("A", "E", "M", "R", "W", "X"):
                raise fail(f"{tag}01 status {status!r} is not A, E, M, R, W or X", tag)
            sets[-1].status = status
            sets[-1].codes = [c for c in (_first(seg, n) for n in range(2, 7)) if c]
            sets[-1].closed = True
            current_segment = current_element = None
        elif tag == "AK9":
            ak9 = seg
        else:
            problems.append(f"unexpected segment {tag} at position {seg.position}")
    if ak1 is None:
        raise fail("no AK1 (functional group response header)", "AK1")
    if ak9 is None:
        raise fail("no AK9 (functional group response trailer)", "AK9")
    if sets and not sets[-1].closed:
        problems.append(f"AK2 {sets[-1].control_number} has no AK5/IK5")
    status = _first(ak9, 1)
    if status not in _STATUS_OUTCOMES:
        raise fail(f"AK901 status {status!r} is not A, E, P, R, M, W or X", "AK9")
    functional_id = _first(ak1, 1)
    if len(functional_id) != 2 or not functional_id.isalpha():
        problems.append(f"AK101 {functional_id!r} is not a functional identifier code")
    group_control = _first(ak1, 2)
    if not group_control.isdigit():
        problems.append(f"AK102 {group_control!r} is not a group control number")
    received = _int(ak9.get(3), "AK903", problems)
    if received is not None and sets and received != len(sets):
        problems.append(f"AK903 says {received} sets but {len(sets)} AK2 loops were sent")
    return FunctionalAck(
        kind=kind,
        control_number=ts.control_number.strip(),
        functional_id=functional_id,
        group_control_number=group_control,
        version=_first(ak1, 3),
        status=status,
        included=_int(ak9.get(2), "AK902", problems),
        received=received,
        accepted=_int(ak9.get(4), "AK904", problems),
        group_codes=[c for c in (_first(ak9, n) for n in range(5, 10)) if c],
        sets=[s.freeze() for s in sets],
        problems=problems,
    )


def parse_ta1(segment: Segment) -> TA1Result:
    """A TA1 segment as a :class:`TA1Result`; raises when it is no TA1 or TA104 is unknown."""
    if segment.tag.strip().upper() != "TA1":
        raise AcknowledgmentParseError(f"segment {segment.tag!r} is not a TA1", field="TA1")
    problems: list[str] = []
    control = segment.get(1).strip()
    if not control:
        raise AcknowledgmentParseError("TA101 (interchange control number) is missing",
                                       field="TA101")
    if not (control.isdigit() and len(control) == 9):
        problems.append(f"TA101 {control!r} is not a nine-digit control number")
    date, time = segment.get(2).strip(), segment.get(3).strip()
    if not (date.isdigit() and len(date) == 6):
        problems.append(f"TA102 {date!r} is not YYMMDD")
    if not (time.isdigit() and len(time) == 4):
        problems.append(f"TA103 {time!r} is not HHMM")
    ack_code = segment.get(4).strip()
    if ack_code not in ("A", "E", "R"):
        raise AcknowledgmentParseError(f"TA104 {ack_code!r} is not A, E or R", field="TA104")
    note = segment.get(5).strip()
    if not note:
        problems.append("TA105 (interchange note code) is missing")
    elif not (note.isdigit() and len(note) == 3):
        problems.append(f"TA105 {note!r} is not a three-digit note code")
    if control.isdigit() and len(control) < 9:
        control = control.zfill(9)
    return TA1Result(control_number=control, date=date, time=time, ack_code=ack_code,
                     note_code=note, problems=problems)
