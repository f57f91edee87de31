"""What kind of payload a message holds, and non-X12 payloads → one canonical document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from gateway.inbound.cxml import CxmlError, parse_order_request
from gateway.inbound.mapping import MappingConfigError, PayloadMappingError, map_json_payload
from gateway.json_input import load_json
from partner_profiles.schema import PartnerProfile
from translators.canonical import parse_document

PayloadKind = Literal["x12", "json", "xml"]
X12_TYPES = frozenset(
    {"application/edi-x12", "application/edi", "text/plain", "application/octet-stream", "application/x12"}
)
JSON_TYPES = frozenset({"application/json"})
XML_TYPES = frozenset({"application/xml", "text/xml", "application/cxml+xml"})


class PayloadError(ValueError):
    """A payload cannot become a canonical document; the message says why."""


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type header value."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def payload_kind(content_type: str | None) -> PayloadKind | None:
    """x12, json or xml for a supported Content-Type (None when unsupported)."""
    kind = media_type(content_type)
    if kind in X12_TYPES or not kind:
        return "x12"
    if kind in JSON_TYPES or kind.endswith("+json"):
        return "json"
    if kind in XML_TYPES or kind.endswith("+xml"):
        return "xml"
    return None


def document_from_payload(kind: PayloadKind, payload: bytes, profile: PartnerProfile) -> BaseModel:
    """Canonical JSON, the partner's JSON (through ``json_mapping``) or cXML as a document."""
    if kind == "xml":
        try:
            return parse_order_request(payload)
        except CxmlError as exc:
            raise PayloadError(str(exc)) from exc
    try:
        data: Any = load_json(payload)
    except ValueError as exc:  # undecodable, malformed or nested too deeply
        raise PayloadError(f"payload is not JSON: {exc}") from exc
    if isinstance(data, dict) and "document_type" in data:
        try:
            return parse_document(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'][1:]) or '(document)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise PayloadError(f"canonical document is not valid: {problems}") from exc
    if profile.json_mapping is None:
        raise PayloadError("JSON without document_type needs a json_mapping in the partner's profile")
    try:
        return map_json_payload(profile.json_mapping, payload)
    except (MappingConfigError, PayloadMappingError) as exc:
        raise PayloadError(str(exc)) from exc
