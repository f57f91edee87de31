"""A partner's own JSON → canonical, by the declarative ``json_mapping`` of its profile."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.inbound.mapping import (
    MappingConfigError,
    PayloadMappingError,
    compile_json_mapping,
    map_json_payload,
)
from gateway.processing.payloads import payload_kind

MAPPING: dict[str, Any] = {
    "document_type": "purchase_order",
    "constants": {"purpose": "00", "parties": [{"role": "seller", "name": "DistCo"}]},
    "fields": {
        "po_number": "id",
        "po_date": {"path": "created_at", "as": "date"},
        "currency": "currency",
        "parties": "[{role: 'ship_to', name: shipping.name, address: {city: shipping.city}}]",
        "notes": "[{text: note}]",
    },
    "lines": {
        "path": "line_items",
        "fields": {
            "quantity": "quantity",
            "unit_price": "price",
            "item.sku": "sku",
            "item.description": "title",
        },
    },
}
ORDER = {
    "id": 1001,
    "created_at": "2026-03-04T12:30:00+01:00",
    "currency": "EUR",
    "note": "leave at door",
    "shipping": {"name": "Jane", "city": "Berlin"},
    "line_items": [
        {"sku": "A-1", "quantity": 2, "price": 19.9, "title": "Mug"},
        {"sku": "B-2", "quantity": 1, "price": "5.00"},
    ],
}


def test_shop_order_maps_to_a_purchase_order() -> None:
    doc = map_json_payload(MAPPING, json.dumps(ORDER).encode()).model_dump(mode="json", exclude_none=True)
    assert doc["po_number"] == "1001" and doc["po_date"] == "2026-03-04" and doc["currency"] == "EUR"
    assert doc["parties"][0] == {
        "role": "ship_to",
        "name": "Jane",
        "ids": [],
        "additional_names": [],
        "address": {"lines": [], "city": "Berlin"},
        "contacts": [],
        "references": [],
    }
    assert [
        (line["line_number"], line["quantity"], line["unit_price"], line["item"]["sku"])
        for line in doc["lines"]
    ] == [("1", "2", "19.9", "A-1"), ("2", "1", "5", "B-2")]
    assert doc["notes"] == [{"text": "leave at door"}]


def test_fields_missing_in_the_payload_are_left_out() -> None:
    data = compile_json_mapping(MAPPING).apply({"id": "X"})
    assert data["po_number"] == "X" and "currency" not in data and data["lines"] == []


def test_constants_and_defaults_fill_in() -> None:
    mapping = {"fields": {"currency": {"path": "currency", "default": "USD"}}, "constants": {"purpose": "00"}}
    data = compile_json_mapping(mapping).apply({})
    assert data == {"document_type": "purchase_order", "purpose": "00", "currency": "USD"}


def test_invalid_result_names_the_field() -> None:
    with pytest.raises(PayloadMappingError, match="po_date"):
        map_json_payload({"fields": {"po_date": "when"}}, b'{"when": "not a date"}')


def test_non_json_payload_is_refused() -> None:
    with pytest.raises(PayloadMappingError, match="not JSON"):
        map_json_payload(MAPPING, b"<xml/>")


def test_lines_path_must_select_a_list() -> None:
    with pytest.raises(PayloadMappingError, match="lines"):
        compile_json_mapping({"lines": {"path": "items"}}).apply({"items": {"sku": "A"}})


@pytest.mark.parametrize(
    "config, field",
    [
        ({"fields": {"po_number": "id["}}, "json_mapping.fields.po_number"),
        ({"fields": {"po_date": {"path": "d", "as": "weekday"}}}, "json_mapping.fields.po_date"),
        ({"document_type": "recipe"}, "document_type"),
        ({"lines": {"fields": {}}}, "json_mapping.lines"),
        ({"colour": "red"}, "unknown keys"),
    ],
)
def test_bad_mappings_are_refused_with_the_field_named(config: dict[str, Any], field: str) -> None:
    with pytest.raises(MappingConfigError, match=field.replace(".", r"\.")):
        compile_json_mapping(config)


@pytest.mark.parametrize(
    "content_type, kind",
    [
        ("application/edi-x12", "x12"),
        ("text/plain; charset=utf-8", "x12"),
        ("application/json", "json"),
        ("application/vnd.shop+json", "json"),
        ("text/xml", "xml"),
        ("application/xml", "xml"),
        ("image/png", None),
    ],
)
def test_content_types_choose_the_payload_kind(content_type: str, kind: str | None) -> None:
    assert payload_kind(content_type) == kind
