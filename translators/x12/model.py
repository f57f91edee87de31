"""The X12 structures the reader yields: segments, envelopes, transaction sets and events."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter

from translators.errors import X12Issue


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four separators of an interchange plus what follows a segment terminator."""

    element: str = "*"
    component: str = ">"
    repetition: str | None = "^"  # ISA11 from 00501 on; None when ISA11 is the standards id "U"
    segment: str = "~"
    suffix: str = "\n"  # written after each terminator; readers tolerate any CR/LF/space there

    def all(self) -> frozenset[str]:
        """The characters that may not appear inside data."""
        chars = {self.element, self.component, self.segment}
        if self.repetition:
            chars.add(self.repetition)
        return frozenset(chars)


class Segment:
    """One segment: its tag and raw element strings (composites and repeats still joined).

    ``elements[0]`` is element 01. ``position`` counts from ST = 1 inside a transaction set
    (0 for envelope segments) and ``offset`` is the byte offset of the tag in the input.
    ``raw`` is the segment's text as read (tag and elements joined by the element separator,
    no terminator); the reader sets it, and code that changes a read segment's tag or elements
    must set it to None so the validator joins the elements instead.
    """

    __slots__ = ("component", "elements", "offset", "position", "raw", "repetition", "tag")

    def __init__(
        self,
        tag: str,
        elements: list[str],
        offset: int = 0,
        position: int = 0,
        component: str = ">",
        repetition: str | None = None,
        raw: str | None = None,
    ) -> None:
        self.tag = tag
        self.elements = elements
        self.offset = offset
        self.position = position
        self.component = component
        self.repetition = repetition
        self.raw = raw

    def __repr__(self) -> str:
        return f"Segment({self.tag!r}, {self.elements!r}, position={self.position})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Segment) and self.tag == other.tag
                and self.elements == other.elements)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def get(self, n: int, default: str = "") -> str:
        """Element ``n`` (1-based) as raw text, or ``default`` when absent or empty."""
        if 0 < n <= len(self.elements):
            value = self.elements[n - 1]
            return value if value else default
        return default

    def components(self, n: int) -> list[str]:
        """Element ``n`` split into its components (a one-item list for a simple element)."""
        return self.get(n).split(self.component)

    def component_value(self, n: int, c: int, default: str = "") -> str:
        """Component ``c`` (1-based) of composite element ``n``."""
        parts = self.components(n)
        if 0 < c <= len(parts) and parts[c - 1]:
            return parts[c - 1]
        return default

    def repeats(self, n: int) -> list[str]:
        """Element ``n`` split at the repetition separator (00501 and later)."""
        value = self.get(n)
        if not value:
            return []
        return value.split(self.repetition) if self.repetition else [value]


@dataclass(slots=True)
class InterchangeHeader:
    """The ISA of one interchange, with its fields already trimmed of padding."""

    index: int  # 1-based number of the interchange in the input
    offset: int
    segment: Segment
    delimiters: Delimiters
    authorization_qualifier: str
    authorization: str
    security_qualifier: str
    security: str
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str  # YYMMDD
    time: str  # HHMM
    standards_id: str  # ISA11 as written (U, or the repetition separator from 00501)
    version: str  # ISA12
    control_number: str  # ISA13
    ack_requested: str  # ISA14
    usage: str  # ISA15: P, T or I
    issues: list[X12Issue] = field(default_factory=list)


@dataclass(slots=True)
class GroupHeader:
    """The GS of one functional group."""

    interchange: InterchangeHeader
    offset: int
    segment: Segment
    functional_id: str  # GS01
    sender: str  # GS02
    receiver: str  # GS03
    date: str  # GS04
    time: str  # GS05
    control_number: str  # GS06
    agency: str  # GS07
    version: str  # GS08 (e.g. 004010, 005010X231A1)


Row = list[str]
"""A segment as a list: its tag at index 0, then element n at index n (``row[3]`` is element 03)."""

OffsetRun = tuple[int, int, int, list[int] | None, int]
"""Where a run of consecutive segments of a set starts: (index of its first segment, that
segment's byte offset, bytes after each text (terminator and line break), byte sizes of the
texts or None when each is its length, index of the first segment in those sizes)."""


def segment_offset(runs: list[OffsetRun], texts: list[str], k: int) -> int:
    """The byte offset of segment ``k`` of a set read as ``runs`` and ``texts``."""
    first, offset, step, sizes, at = runs[bisect_right(runs, k, key=_FIRST) - 1]
    if sizes is not None:
        return offset + sum(sizes[at:at + k - first])
    return offset + sum(map(len, texts[first:k])) + (k - first) * step


_FIRST = itemgetter(0)


class TransactionSet:
    """One complete transaction set, ST through SE inclusive, with its envelope issues.

    The reader keeps each segment as a :data:`Row` plus its text (``rows``, ``texts``), which is
    all the validator and the maps read; :class:`Segment` objects (``segments``, ``body``) are
    built from them on first use. A set built from segments derives its rows the same way.
    Read sets are not meant to be changed: the two views are not kept in step.
    """

    __slots__ = ("_offsets", "_rows", "_segments", "_texts", "component", "control_number",
                 "group", "implementation_reference", "issues", "offset", "repetition", "set_id",
                 "size")

    def __init__(self, group: GroupHeader, offset: int, segments: list[Segment], set_id: str,
                 control_number: str, implementation_reference: str = "",
                 issues: list[X12Issue] | None = None, size: int = 0) -> None:
        self.group = group
        self.offset = offset
        self.set_id = set_id  # ST01
        self.control_number = control_number  # ST02
        self.implementation_reference = implementation_reference  # ST03 (005010)
        self.issues = [] if issues is None else issues
        self.size = size  # bytes of the set in the input, terminators included
        self._segments: list[Segment] | None = segments
        self._rows: list[Row] | None = None
        self._texts: list[str] | None = None
        self._offsets: list[OffsetRun] = []
        first = segments[0] if segments else None
        d = group.interchange.delimiters
        self.component = first.component if first else d.component
        self.repetition = first.repetition if first else d.repetition

    @classmethod
    def read(cls, group: GroupHeader, offset: int, rows: list[Row], texts: list[str],
             offsets: list[OffsetRun], set_id: str, control_number: str,
             implementation_reference: str, issues: list[X12Issue], size: int) -> TransactionSet:
        """A set as the reader keeps it: rows, their texts and where their runs start."""
        ts = cls(group, offset, [], set_id, control_number, implementation_reference, issues, size)
        ts._segments = None  # built from the rows on first use
        ts._rows, ts._texts, ts._offsets = rows, texts, offsets
        return ts

    def __repr__(self) -> str:
        return (f"TransactionSet({self.set_id!r}, {self.control_number!r}, offset={self.offset}, "
                f"segments={len(self.rows)})")

    @property
    def rows(self) -> list[Row]:
        """Every segment, ST through SE, as a :data:`Row`."""
        rows = self._rows
        if rows is None:
            rows = self._rows = [[s.tag, *s.elements] for s in self.segments]
        return rows

    @property
    def texts(self) -> list[str]:
        """Every segment's text as read (tag and elements joined, no terminator)."""
        texts = self._texts
        if texts is None:
            join = self.group.interchange.delimiters.element.join
            texts = self._texts = [s.raw if s.raw is not None else join([s.tag, *s.elements])
                                   for s in self.segments]
        return texts

    @property
    def segments(self) -> list[Segment]:
        """Every segment, ST through SE (built from the rows on first use)."""
        segments = self._segments
        if segments is None:
            rows, texts = self.rows, self.texts
            component, repetition = self.component, self.repetition
            offsets: list[int] = []
            runs = self._offsets
            for r, (first, offset, step, sizes, at) in enumerate(runs):
                end = runs[r + 1][0] if r + 1 < len(runs) else len(texts)
                lengths = (sizes[at:at + end - first - 1] if sizes is not None
                           else [len(t) + step for t in texts[first:end - 1]])
                offsets += accumulate(lengths, initial=offset)
            segments = self._segments = [
                Segment(row[0], row[1:], offset, k + 1, component, repetition, text)
                for k, (row, text, offset) in enumerate(zip(rows, texts, offsets, strict=True))]
        return segments

    @property
    def body(self) -> list[Segment]:
        """The segments between ST and SE."""
        segments = self.segments
        end = -1 if segments and segments[-1].tag == "SE" else len(segments)
        return segments[1:end]

    @property
    def body_rows(self) -> list[Row]:
        """The rows between ST and SE."""
        rows = self.rows
        end = -1 if rows and rows[-1][0] == "SE" else len(rows)
        return rows[1:end]

    @property
    def version(self) -> str:
        """The version that governs the set: ST03 when given, else GS08."""
        return self.implementation_reference or self.group.version


# --- Events the streaming reader yields, in input order ----------------------------------

@dataclass(slots=True)
class InterchangeStart:
    """An ISA was read."""

    header: InterchangeHeader


@dataclass(slots=True)
class GroupStart:
    """A GS was read."""

    header: GroupHeader


@dataclass(slots=True)
class GroupEnd:
    """A functional group ended (by its GE, or prematurely: then ``trailer`` is None)."""

    header: GroupHeader
    trailer: Segment | None
    transaction_count: int
    issues: list[X12Issue] = field(default_factory=list)


@dataclass(slots=True)
class InterchangeEnd:
    """An interchange ended (by its IEA, or prematurely: then ``trailer`` is None)."""

    header: InterchangeHeader
    trailer: Segment | None
    group_count: int
    ta1_segments: list[Segment] = field(default_factory=list)
    issues: list[X12Issue] = field(default_factory=list)


@dataclass(slots=True)
class InputProblem:
    """A problem outside any interchange: no ISA, or bytes that belong to none."""

    issue: X12Issue


Event = InterchangeStart | GroupStart | TransactionSet | GroupEnd | InterchangeEnd | InputProblem
