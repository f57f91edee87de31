"""Maps between X12 transaction sets (850/855/856/810) and canonical documents.

``to_canonical`` reads a transaction set into a canonical document; ``from_canonical`` writes
a canonical document as the body segments (between ST and SE) of a transaction set. Both take
the partner's :class:`~translators.settings.MappingSettings` (UOM and code translations, item
cross-reference, defaults); ``check_required`` applies its ``required`` paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import pydantic_core
from pydantic import ValidationError as PydanticValidationError

from translators.canonical import (
    DOCUMENT_TYPES,
    MODELS,
    SET_DOCUMENT_TYPES,
    CanonicalDocument,
    apply_defaults,
    check_required,
    parse_document,
    to_dict,
    to_json_bytes,
)
from translators.errors import MappingError, X12Issue
from translators.maps import ack855, asn856, inv810, po850
from translators.maps._engine import Context
from translators.settings import MappingSettings
from translators.x12.model import Row, Segment, TransactionSet
from translators.x12.writer import SegmentSpec

__all__ = [
    "SUPPORTED_VERSIONS", "MappedSet", "check_required", "document_type_for", "from_canonical",
    "required_errors", "segments_to_canonical", "to_canonical", "to_canonical_data",
    "to_canonical_json", "to_json_bytes",
]

MappedSet = tuple[str, list[SegmentSpec]]  # a document mapped for X12: set id and body segments

_MAPS: dict[str, ModuleType] = {"850": po850, "855": ack855, "856": asn856, "810": inv810}
SUPPORTED_VERSIONS = ("004010", "005010")

_dumps: Callable[[Any], bytes]
try:  # a C encoder ~3x faster than pydantic_core.to_json on plain data, same bytes out
    from orjson import dumps as _orjson_dumps
    _dumps = _orjson_dumps
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    _dumps = pydantic_core.to_json


def document_type_for(set_id: str) -> str:
    """The canonical document type of an X12 set id ("850" -> "purchase_order")."""
    try:
        return SET_DOCUMENT_TYPES[set_id]
    except KeyError:
        raise MappingError(f"no map for transaction set {set_id!r}", field="ST01") from None


def to_canonical(ts: TransactionSet, settings: MappingSettings | None = None
                 ) -> CanonicalDocument:
    """The canonical document for one transaction set (MappingError when it cannot be mapped)."""
    return _validated(ts.set_id, _read(ts.set_id, ts.body_rows, settings))


def segments_to_canonical(set_id: str, body: Sequence[Segment],
                          settings: MappingSettings | None = None) -> CanonicalDocument:
    """The canonical document for the body segments (ST..SE excluded) of set ``set_id``."""
    rows = [[s.tag, *s.elements] for s in body]
    return _validated(set_id, _read(set_id, rows, settings))


def _validated(set_id: str, data: dict[str, Any]) -> CanonicalDocument:
    model = MODELS[data["document_type"]]
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:  # pragma: no cover - the maps build valid data
        error = exc.errors()[0]
        path = ".".join(str(p) for p in error["loc"])
        raise MappingError(f"{set_id} cannot be mapped: {path}: {error['msg']}",
                           field=path) from exc


def to_canonical_data(ts: TransactionSet, settings: MappingSettings | None = None, *,
                      issues: Sequence[X12Issue] | None = None) -> dict[str, Any]:
    """The canonical document of one transaction set as JSON-ready data.

    The same document as ``json.loads(to_json_bytes(to_canonical(ts, settings)))``: every
    field that is not None, so empty lists too (the maps start each object from its
    model's defaults and normalise values while reading). Key order is not part of the
    contract (JSON objects are unordered): defaults first, then the maps' reading order.

    ``issues`` are what reading and validating ``ts`` found. When there are none, the maps'
    data is returned as read, without a model: a set that passed its own version's schema
    has every element the model requires. Otherwise, or when they are not given, the model
    checks the data first and MappingError is raised for what it rejects, as in
    ``to_canonical``.
    """
    data = _read(ts.set_id, ts.body_rows, settings)
    if issues is None or issues or (settings is not None
                                    and settings.defaults.get(data["document_type"])):
        # A partner default may also name any path or value: the model checks it too.
        return to_dict(_validated(ts.set_id, data))
    return data


def to_canonical_json(ts: TransactionSet, settings: MappingSettings | None = None, *,
                      issues: Sequence[X12Issue] | None = None) -> bytes:
    """The canonical JSON of one transaction set: :func:`to_canonical_data` encoded.

    It describes the same document as ``to_json_bytes(to_canonical(ts, settings))`` (the
    JSON values are equal; keys are not in the model's order)."""
    return _dumps(to_canonical_data(ts, settings, issues=issues))


def _read(set_id: str, body: Sequence[Row], settings: MappingSettings | None
          ) -> dict[str, Any]:
    module = _MAPS.get(set_id)
    if module is None:
        raise MappingError(f"no map for transaction set {set_id!r}", field="ST01")
    ctx = Context(settings)
    read: Callable[[Sequence[Row], Context], dict[str, Any]] = module.read
    try:
        data = read(body, ctx)
    except (IndexError, AttributeError, TypeError, ValueError, KeyError) as exc:
        raise MappingError(f"{set_id} cannot be mapped: {exc}") from exc
    data["schema_version"] = "1"
    if ctx.invalid:
        data["invalid_values"] = ctx.invalid
    if ctx.extra:
        data["extra_segments"] = ctx.extra
    if settings is not None:
        defaults = settings.defaults.get(data["document_type"])
        if defaults:
            apply_defaults(data, defaults)
    return data


def from_canonical(doc: CanonicalDocument, settings: MappingSettings | None = None, *,
                   version: str = "004010") -> MappedSet:
    """The set id and the body segments (between ST and SE) for a canonical document."""
    if version[:6] not in SUPPORTED_VERSIONS:
        raise MappingError(f"version {version!r} is not supported for maps", field="version")
    set_id = DOCUMENT_TYPES[doc.document_type]
    if settings is not None:
        defaults = settings.defaults.get(doc.document_type)
        if defaults:
            doc = parse_document(apply_defaults(doc.model_dump(exclude_none=True), defaults))
    ctx = Context(settings, version)
    write: Callable[[Any, Context], list[SegmentSpec]] = _MAPS[set_id].write
    return set_id, write(doc, ctx)


def required_errors(doc: CanonicalDocument, settings: MappingSettings | None) -> list[str]:
    """The partner's ``required`` paths for this document type that are missing."""
    if settings is None:
        return []
    paths = settings.required.get(doc.document_type)
    return check_required(doc, paths) if paths else []
