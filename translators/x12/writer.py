"""Serialise segments with a partner's delimiters and wrap them in ST/SE, GS/GE and ISA/IEA."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from translators.x12.model import Delimiters

# An element is a plain value, or a sequence of components for a composite element.
Element = str | Sequence[str]
SegmentSpec = tuple[str, Sequence[Element]]


class WriteError(ValueError):
    """A value cannot be written with the chosen delimiters."""


def _element_text(value: Element, delimiters: Delimiters) -> str:
    if isinstance(value, str):
        text = value
        parts: Sequence[str] = (value,)
    else:
        parts = list(value)
        while parts and not parts[-1]:
            parts.pop()
        text = delimiters.component.join(parts)
    reserved = delimiters.all()
    for part in parts:
        if any(ch in reserved for ch in part):
            raise WriteError(f"value {part!r} contains a delimiter character")
    return text


def format_segment(tag: str, elements: Sequence[Element], delimiters: Delimiters) -> str:
    """One segment with trailing empty elements dropped, terminator and suffix included."""
    texts = [_element_text(e, delimiters) for e in elements]
    while texts and not texts[-1]:
        texts.pop()
    body = delimiters.element.join([tag, *texts])
    return body + delimiters.segment + delimiters.suffix


@dataclass(frozen=True, slots=True)
class InterchangeEnvelope:
    """The values of one ISA (ids unpadded; the writer pads them)."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str  # YYMMDD
    time: str  # HHMM
    control_number: int
    version: str = "00401"  # ISA12
    ack_requested: bool = False
    usage: str = "P"
    authorization_qualifier: str = "00"
    authorization: str = ""
    security_qualifier: str = "00"
    security: str = ""


@dataclass(frozen=True, slots=True)
class GroupEnvelope:
    """The values of one GS."""

    functional_id: str
    sender: str
    receiver: str
    date: str  # CCYYMMDD
    time: str  # HHMM
    control_number: int
    version: str  # GS08
    agency: str = "X"


def format_isa(env: InterchangeEnvelope, delimiters: Delimiters) -> str:
    """The fixed-width 106-character ISA followed by terminator and suffix."""
    standards = delimiters.repetition if env.version >= "00501" and delimiters.repetition else "U"
    fields = [
        env.authorization_qualifier, env.authorization.ljust(10)[:10],
        env.security_qualifier, env.security.ljust(10)[:10],
        env.sender_qualifier, env.sender_id.ljust(15)[:15],
        env.receiver_qualifier, env.receiver_id.ljust(15)[:15],
        env.date, env.time, standards, env.version,
        f"{env.control_number:09d}", "1" if env.ack_requested else "0", env.usage,
        delimiters.component,
    ]
    isa = delimiters.element.join(["ISA", *fields])
    if len(isa) != 105:
        raise WriteError(f"ISA would be {len(isa) + 1} characters, not 106")
    return isa + delimiters.segment + delimiters.suffix


def format_transaction(
    set_id: str,
    control_number: str,
    body: Iterable[SegmentSpec],
    delimiters: Delimiters,
    implementation_reference: str = "",
) -> tuple[str, int]:
    """ST, the body and SE with its segment count; returns the text and the segment count."""
    st: list[Element] = [set_id, control_number]
    if implementation_reference:
        st.append(implementation_reference)
    out = [format_segment("ST", st, delimiters)]
    out.extend(format_segment(tag, elements, delimiters) for tag, elements in body)
    count = len(out) + 1
    out.append(format_segment("SE", [str(count), control_number], delimiters))
    return "".join(out), count


def format_group(group: GroupEnvelope, transactions: Sequence[str], delimiters: Delimiters) -> str:
    """GS, the already formatted transaction sets, and GE with the set count."""
    gs = format_segment("GS", [
        group.functional_id, group.sender, group.receiver, group.date, group.time,
        str(group.control_number), group.agency, group.version,
    ], delimiters)
    ge = format_segment("GE", [str(len(transactions)), str(group.control_number)], delimiters)
    return gs + "".join(transactions) + ge


def format_interchange(
    env: InterchangeEnvelope, groups: Sequence[str], delimiters: Delimiters,
    *, extra_segments: Sequence[str] = (),
) -> str:
    """ISA, optional interchange-level segments (TA1), the groups, and IEA with the group count."""
    iea = format_segment("IEA", [str(len(groups)), f"{env.control_number:09d}"], delimiters)
    return format_isa(env, delimiters) + "".join(extra_segments) + "".join(groups) + iea
