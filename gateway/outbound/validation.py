"""Validate a canonical document for one partner: JSON Schema (pydantic), the partner's
required fields, whether the partner takes this type outbound, and its X12 map."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateway.outbound.errors import DocumentInvalid
from partner_profiles.schema import PartnerProfile
from translators.canonical import DOCUMENT_TYPES, CanonicalDocument, check_required, parse_document
from translators.errors import MappingError
from translators.maps import MappedSet, from_canonical

_REQUIRED_SUFFIX = " is required"


def _field(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item not in DOCUMENT_TYPES:  # pydantic's discriminator tag is not a field
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(root)"


def check_document_type(profile: PartnerProfile, document_type: str) -> None:
    """The partner must take ``document_type`` outbound (``documents`` in its profile)."""
    if document_type not in DOCUMENT_TYPES:
        raise DocumentInvalid(
            [
                {
                    "field": "document_type",
                    "message": f"unknown document type; one of {', '.join(DOCUMENT_TYPES)}",
                }
            ]
        )
    setting = profile.documents.get(document_type)  # type: ignore[call-overload]
    if setting is None or setting.direction == "inbound" or not setting.enabled:
        raise DocumentInvalid(
            [
                {
                    "field": "document_type",
                    "message": f"partner {profile.id} does not take {document_type} outbound "
                    f"(documents.{document_type}.direction in its profile)",
                }
            ]
        )


def validate_document(profile: PartnerProfile, document_type: str, data: Any) -> CanonicalDocument:
    """The parsed document, or ``DocumentInvalid`` listing every field problem found."""
    return validate_and_map(profile, document_type, data)[0]


def validate_and_map(
    profile: PartnerProfile, document_type: str, data: Any
) -> tuple[CanonicalDocument, MappedSet]:
    """The parsed document and its X12 body for the partner, or ``DocumentInvalid``."""
    check_document_type(profile, document_type)
    if not isinstance(data, dict):
        raise DocumentInvalid([{"field": "(root)", "message": "the body must be a JSON object"}])
    given = data.get("document_type", document_type)
    if given != document_type:
        raise DocumentInvalid(
            [{"field": "document_type", "message": f"is {given!r} but the URL says {document_type!r}"}]
        )
    try:
        document = parse_document({**data, "document_type": document_type})
    except ValidationError as exc:
        raise DocumentInvalid(
            [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        ) from exc
    required = profile.mappings.required.get(document_type, [])
    problems = check_required(document, required) if required else []
    if problems:
        raise DocumentInvalid(
            [
                {
                    "field": p[: -len(_REQUIRED_SUFFIX)] if p.endswith(_REQUIRED_SUFFIX) else "(root)",
                    "message": f"required by partner {profile.id}",
                }
                for p in problems
            ]
        )
    try:
        mapped = from_canonical(document, profile.mappings, version=profile.x12.version)
    except MappingError as exc:
        raise DocumentInvalid(
            [
                {
                    "field": str(getattr(exc, "field", None) or "(root)"),
                    "message": f"cannot be written as X12: {exc}",
                }
            ]
        ) from exc
    return document, mapped
