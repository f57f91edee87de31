"""X12 transaction set schemas kept as data (YAML under ``data/<version>/``)."""

from translators.schemas._loader import (
    SchemaDataError,
    element_dictionary,
    get_schema,
    known_sets,
    known_versions,
    resolve_version,
    segment_dictionary,
)
from translators.schemas.model import (
    ComponentRef,
    CompositeDef,
    ElementDef,
    ElementRef,
    HierarchyDef,
    LoopDef,
    SegmentDef,
    SegmentUse,
    SyntaxNote,
    TransactionSchema,
)

__all__ = [
    "ComponentRef",
    "CompositeDef",
    "ElementDef",
    "ElementRef",
    "HierarchyDef",
    "LoopDef",
    "SchemaDataError",
    "SegmentDef",
    "SegmentUse",
    "SyntaxNote",
    "TransactionSchema",
    "element_dictionary",
    "get_schema",
    "known_sets",
    "known_versions",
    "resolve_version",
    "segment_dictionary",
]
