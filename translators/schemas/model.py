"""Typed, immutable shapes of the X12 schemas loaded from ``schemas/data``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Requirement = Literal["M", "O", "X"]
SyntaxKind = Literal["P", "R", "E", "C", "L"]


@dataclass(frozen=True, slots=True)
class ElementDef:
    """A data element of the dictionary: type Nn/R/ID/AN/DT/TM/B, lengths and codes."""

    id: str  # data element reference number, e.g. "324"
    name: str
    type: str  # "AN", "ID", "DT", "TM", "R", "B", or "N0".."N9"
    min: int
    max: int
    codes: frozenset[str] | None = None  # only for ID elements whose list we enforce
    # An open list (REF01, product id qualifiers, N101...) is documentation, not a rule: real
    # partners use far more codes than any list we keep; a profile can still restrict it.
    known_codes: frozenset[str] | None = None

    @property
    def decimals(self) -> int | None:
        """Implied decimal places of an Nn element, None for other types."""
        if self.type[0] == "N" and len(self.type) == 2:
            return int(self.type[1])
        return None


@dataclass(frozen=True, slots=True)
class SyntaxNote:
    """An X12 relational condition among elements (1-based positions)."""

    kind: SyntaxKind  # P paired, R required, E exclusion, C conditional, L list conditional
    positions: tuple[int, ...]

    def __str__(self) -> str:
        return self.kind + "".join(f"{p:02d}" for p in self.positions)


@dataclass(frozen=True, slots=True)
class ComponentRef:
    """One component of a composite element."""

    position: int
    element: ElementDef
    requirement: Requirement


@dataclass(frozen=True, slots=True)
class CompositeDef:
    """A composite data structure such as C001 or C040."""

    id: str
    name: str
    components: tuple[ComponentRef, ...]
    syntax: tuple[SyntaxNote, ...] = ()


@dataclass(frozen=True, slots=True)
class ElementRef:
    """One element position of a segment: a simple element or a composite."""

    position: int
    requirement: Requirement
    element: ElementDef | None = None
    composite: CompositeDef | None = None
    repeat: int = 1  # maximum repetitions (005010 repeating elements)

    @property
    def reference(self) -> str:
        """The data element number (or composite id) used in acknowledgments."""
        if self.element is not None:
            return self.element.id
        assert self.composite is not None
        return self.composite.id


@dataclass(frozen=True, slots=True)
class SegmentDef:
    """A segment of the dictionary. ``elements`` is None when only placement is checked."""

    tag: str
    name: str
    elements: tuple[ElementRef, ...] | None
    syntax: tuple[SyntaxNote, ...] = ()


@dataclass(frozen=True, slots=True)
class SegmentUse:
    """A segment at one place of a transaction set."""

    segment: SegmentDef
    requirement: Requirement
    max_use: int | None  # None: unbounded (">1")

    @property
    def tag(self) -> str:
        """The segment id."""
        return self.segment.tag


@dataclass(frozen=True, slots=True)
class LoopDef:
    """A loop: its first child is the trigger segment that starts each repetition."""

    id: str
    requirement: Requirement
    max_repeat: int | None  # None: unbounded
    children: tuple[SegmentUse | LoopDef, ...]

    @property
    def trigger(self) -> str:
        """Tag of the segment that begins the loop."""
        first = self.children[0]
        assert isinstance(first, SegmentUse)
        return first.tag


@dataclass(frozen=True, slots=True)
class HierarchyDef:
    """HL levels of a hierarchical set (856): level code -> name, and the loop that holds them."""

    loop: str
    levels: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TransactionSchema:
    """One transaction set in one version: its structure and the dictionaries it uses."""

    set_id: str
    version: str  # six-character schema version, e.g. "004010"
    name: str
    functional_id: str  # GS01 the set travels under
    root: LoopDef  # pseudo-loop holding ST ... SE
    segments: dict[str, SegmentDef]  # every segment the set uses, by tag
    dictionary: dict[str, SegmentDef]  # every segment known in this version, by tag
    hierarchy: HierarchyDef | None = None

    def __hash__(self) -> int:
        return hash((self.set_id, self.version))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TransactionSchema) and self.set_id == other.set_id
                and self.version == other.version)
