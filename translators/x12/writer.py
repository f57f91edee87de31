"""Serialise segments with a partner's delimiters and wrap them in ST/SE, GS/GE and ISA/IEA."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

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


def _format_checked(tag: str, elements: Sequence[Element], delimiters: Delimiters) -> str:
    """The element-by-element path: composites, and the precise error for a bad value."""
    texts = [_element_text(e, delimiters) for e in elements]
    while texts and not texts[-1]:
        texts.pop()
    body = delimiters.element.join([tag, *texts])
    return body + delimiters.segment + delimiters.suffix


Formatter = Callable[[str, Sequence[Element]], str]
Search = Callable[[str], bool] | None  # True when a text holds a delimiter character
_Compiled = tuple[Formatter, Search]
_COMPILED: dict[Delimiters, _Compiled] = {}
_last: tuple[Delimiters | None, _Compiled] = (None, (lambda tag, elements: "", None))


def _compiled(delimiters: Delimiters) -> _Compiled:
    global _last
    last_delimiters, last = _last
    if last_delimiters is delimiters:  # the usual case, without hashing the dataclass in Python
        return last
    compiled = _COMPILED.get(delimiters)
    if compiled is None:
        if len(_COMPILED) >= 64:
            _COMPILED.clear()
        compiled = _COMPILED[delimiters] = _make_formatter(delimiters)
    _last = (delimiters, compiled)
    return compiled


def segment_formatter(delimiters: Delimiters) -> Formatter:
    """``format_segment`` bound to one delimiter set (compiled once per set, then cached)."""
    return _compiled(delimiters)[0]


def _make_formatter(delimiters: Delimiters) -> _Compiled:
    singles = tuple(sorted(c for c in delimiters.all() if len(c) == 1))
    search: Search = None
    if singles:
        def search(text: str) -> bool:
            # One memchr-speed scan per delimiter beats a regex character class by far.
            return any([c in text for c in singles])
    sep = delimiters.element
    end = delimiters.segment + delimiters.suffix

    def fmt(tag: str, elements: Sequence[Element]) -> str:
        # Plain values (the usual case): one join and one regex scan in C for all of them.
        els = elements if type(elements) is list else list(elements)
        try:
            flat = "".join(els)  # type: ignore[arg-type]
        except TypeError:  # a composite among them
            return _format_checked(tag, els, delimiters)
        if search is not None and search(flat):
            return _format_checked(tag, els, delimiters)  # raises WriteError for the bad value
        n = len(els)
        while n and not els[n - 1]:
            n -= 1
        if not n:
            return tag + end
        return tag + sep + sep.join(els[:n] if n < len(els) else els) + end  # type: ignore[arg-type]

    return fmt, search


def _format_body(specs: list[SegmentSpec], delimiters: Delimiters) -> list[str]:
    """The segments of a transaction body; one check of all tags and values when they are plain.

    When every element list is a list or tuple of strings and no tag or value holds a
    delimiter, a segment is its joined text less the trailing separators (from empty elements);
    anything else goes segment by segment, which raises for the first bad value as before."""
    sep = delimiters.element
    fmt, search = _compiled(delimiters)
    if len(sep) != 1 or search is None or not set(map(type, map(_second, specs))) <= {list, tuple}:
        return [fmt(tag, elements) for tag, elements in specs]
    join = "".join
    try:
        flat = join(map(join, map(_second, specs))) + join(map(_first, specs))
    except TypeError:  # a composite
        return [fmt(tag, elements) for tag, elements in specs]
    if search(flat):
        return [fmt(tag, elements) for tag, elements in specs]
    join = sep.join
    end = delimiters.segment + delimiters.suffix
    return [(tag + sep + join(elements)).rstrip(sep) + end  # type: ignore[arg-type]
            for tag, elements in specs]


_first = itemgetter(0)
_second = itemgetter(1)


def format_segment(tag: str, elements: Sequence[Element], delimiters: Delimiters) -> str:
    """One segment with trailing empty elements dropped, terminator and suffix included."""
    return segment_formatter(delimiters)(tag, elements)


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
    fmt = segment_formatter(delimiters)
    specs = body if type(body) is list else list(body)
    for tag, elements in specs:
        if not any(elements):
            # X12 has no empty segments (readers report them); say which document part is empty.
            raise WriteError(f"segment {tag} would carry no data: the document gives it no values")
    out = [fmt("ST", st)]
    out += _format_body(specs, delimiters)
    count = len(out) + 1
    out.append(fmt("SE", [str(count), control_number]))
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
