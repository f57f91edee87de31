"""The discriminated union of canonical documents, parsing, JSON and JSON Schema export."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from translators.canonical.models import (
    Invoice,
    OrderAcknowledgment,
    PurchaseOrder,
    ShipNotice,
)

CanonicalDocument = Annotated[
    PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice,
    Field(discriminator="document_type"),
]

# document_type -> X12 transaction set id, and back.
DOCUMENT_TYPES: dict[str, str] = {
    "purchase_order": "850",
    "order_acknowledgment": "855",
    "ship_notice": "856",
    "invoice": "810",
}
SET_DOCUMENT_TYPES: dict[str, str] = {v: k for k, v in DOCUMENT_TYPES.items()}

MODELS: dict[str, type[PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice]] = {
    "purchase_order": PurchaseOrder,
    "order_acknowledgment": OrderAcknowledgment,
    "ship_notice": ShipNotice,
    "invoice": Invoice,
}

_adapter: TypeAdapter[PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice] = TypeAdapter(
    CanonicalDocument)


def parse_document(data: dict[str, Any]) -> PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice:
    """Validate a canonical JSON object (raises pydantic.ValidationError when invalid)."""
    return _adapter.validate_python(data)


def parse_document_json(data: bytes | str) -> PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice:
    """Validate canonical JSON text."""
    return _adapter.validate_json(data)


def to_json_bytes(doc: PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice) -> bytes:
    """The document as compact JSON (fields that are None are left out)."""
    return doc.__pydantic_serializer__.to_json(doc, exclude_none=True)


def to_dict(doc: PurchaseOrder | OrderAcknowledgment | ShipNotice | Invoice) -> dict[str, Any]:
    """The document as a JSON-ready dict (fields that are None are left out)."""
    return doc.model_dump(mode="json", exclude_none=True)


def json_schema(document_type: str) -> dict[str, Any]:
    """The JSON Schema of one document type (KeyError for an unknown type)."""
    model = MODELS[document_type]
    schema = model.model_json_schema()
    schema["$id"] = f"/api/v1/schemas/{document_type}"
    return schema
