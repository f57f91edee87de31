"""Partner-specific validation rules layered on top of the X12 schemas."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from translators.settings import MappingSettings

_ELEMENT_ID = re.compile(r"^([A-Z][A-Z0-9]{1,2}?)(\d\d)$")
_SEGMENT_ID = re.compile(r"^([A-Z][A-Z0-9]{1,2})(?:\*(.+))?$")


def split_element_id(element_id: str) -> tuple[str, int]:
    """("BEG", 2) for "BEG02"; ValueError for anything else."""
    m = _ELEMENT_ID.match(element_id.strip().upper())
    if not m:
        raise ValueError(f"not an element position id like BEG02: {element_id!r}")
    return m.group(1), int(m.group(2))


def split_segment_id(segment_id: str) -> tuple[str, str | None]:
    """("REF", "DP") for "REF*DP", ("REF", None) for "REF"; ValueError otherwise."""
    m = _SEGMENT_ID.match(segment_id.strip())
    if not m:
        raise ValueError(f"not a segment id like REF or REF*DP: {segment_id!r}")
    return m.group(1), m.group(2)


@dataclass(frozen=True, slots=True)
class PartnerRules:
    """What one partner demands beyond the standard.

    ``allowed_codes``: element position id ("BEG02") -> the only codes accepted there; it
    replaces the standard list for that element, so it can both narrow and widen it.
    ``required_elements``: element position ids ("PO107") that must carry a value.
    ``required_segments``: segment ids ("REF", or "REF*DP" for a REF whose first element is DP)
    that must occur in the transaction set.
    """

    allowed_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    required_elements: frozenset[str] = frozenset()
    required_segments: frozenset[str] = frozenset()
    key: tuple[object, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = {k.strip().upper(): frozenset(v) for k, v in self.allowed_codes.items()}
        for element_id in (*codes, *self.required_elements):
            split_element_id(element_id)
        for segment_id in self.required_segments:
            split_segment_id(segment_id)
        object.__setattr__(self, "allowed_codes", MappingProxyType(codes))
        object.__setattr__(self, "required_elements",
                           frozenset(e.strip().upper() for e in self.required_elements))
        object.__setattr__(self, "key", (
            tuple(sorted((k, tuple(sorted(v))) for k, v in codes.items())),
            tuple(sorted(self.required_elements)),
            tuple(sorted(self.required_segments))))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PartnerRules) and self.key == other.key

    @property
    def is_empty(self) -> bool:
        """True when the rules add nothing to the standard."""
        return not (self.allowed_codes or self.required_elements or self.required_segments)


def _frozen(values: Iterable[str]) -> frozenset[str]:
    return frozenset(str(v) for v in values)


def rules_from_settings(mapping: MappingSettings) -> PartnerRules:
    """The partner rules a profile's ``mappings`` section carries (``allowed_codes`` today)."""
    return PartnerRules(allowed_codes={k: _frozen(v) for k, v in mapping.allowed_codes.items()})
