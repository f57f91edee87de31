"""Canonical models: value types, the document union, JSON Schema, required paths, defaults."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from translators.canonical import (
    DOCUMENT_TYPES,
    Invoice,
    Item,
    PurchaseOrder,
    PurchaseOrderLine,
    apply_defaults,
    check_required,
    json_schema,
    parse_document,
    parse_document_json,
    to_json_bytes,
)
from translators.canonical._types import normalise_decimal


@pytest.mark.parametrize(("text", "expected"), [
    ("12.30", "12.3"), ("+007", "7"), ("-0", "0"), ("-0.50", "-0.5"), (".5", "0.5"),
    ("10.", "10"), ("0.000", "0"), ("123456789012345678901234.10", "123456789012345678901234.1"),
])
def test_decimal_strings_are_normalised_without_float(text: str, expected: str) -> None:
    assert normalise_decimal(text) == expected
    doc = parse_document({"document_type": "invoice", "total_amount": text})
    assert isinstance(doc, Invoice)
    assert doc.total_amount == expected


@pytest.mark.parametrize("bad", ["1e5", "12,5", "", " 1", "abc", "1.2.3", "--1"])
def test_non_decimal_money_is_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_document({"document_type": "invoice", "total_amount": bad})


def test_money_as_a_json_number_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_document({"document_type": "invoice", "total_amount": 12.5})


@pytest.mark.parametrize("good", ["2024-02-29", "2000-02-29", "1999-12-31", "2023-04-30"])
def test_calendar_dates_are_accepted(good: str) -> None:
    doc = parse_document({"document_type": "invoice", "invoice_date": good})
    assert isinstance(doc, Invoice) and doc.invoice_date == good


@pytest.mark.parametrize("bad", ["2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01",
                                 "20240101", "2024-1-01"])
def test_impossible_or_malformed_dates_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_document({"document_type": "invoice", "invoice_date": bad})


@pytest.mark.parametrize(("value", "ok"), [("12:30", True), ("23:59:59", True), ("24:00", False),
                                           ("1230", False), ("12:60", False)])
def test_times_are_hh_mm_with_optional_seconds(value: str, ok: bool) -> None:
    data = {"document_type": "ship_notice", "ship_time": value}
    if ok:
        parse_document(data)
    else:
        with pytest.raises(ValidationError):
            parse_document(data)


def test_unknown_fields_are_rejected_at_every_level() -> None:
    with pytest.raises(ValidationError):
        parse_document({"document_type": "purchase_order", "po_numbr": "1"})
    with pytest.raises(ValidationError):
        parse_document({"document_type": "purchase_order", "lines": [{"item": {"colour": "red"}}]})


def test_document_type_selects_the_model_and_unknown_types_are_rejected() -> None:
    for document_type in DOCUMENT_TYPES:
        assert parse_document({"document_type": document_type}).document_type == document_type
    with pytest.raises(ValidationError):
        parse_document({"document_type": "remittance"})


def test_document_types_map_to_x12_set_ids() -> None:
    assert DOCUMENT_TYPES == {"purchase_order": "850", "order_acknowledgment": "855",
                              "ship_notice": "856", "invoice": "810"}


def test_json_round_trips_through_parse_document_json() -> None:
    doc = PurchaseOrder(po_number="PO1", po_date="2024-01-02",
                        lines=[PurchaseOrderLine(quantity="2", item=Item(upc="012345678905"))])
    text = to_json_bytes(doc)
    data = json.loads(text)
    assert data["document_type"] == "purchase_order" and data["schema_version"] == "1"
    assert "release_number" not in data  # None is left out
    assert parse_document_json(text) == doc


def test_json_schema_describes_each_document_with_string_decimals() -> None:
    for document_type in DOCUMENT_TYPES:
        schema = json_schema(document_type)
        assert schema["$id"] == f"/api/v1/schemas/{document_type}"
        assert schema["additionalProperties"] is False
    invoice = json_schema("invoice")
    total = invoice["properties"]["total_amount"]["anyOf"][0]
    assert total["type"] == "string" and "pattern" in total
    assert invoice["properties"]["invoice_date"]["anyOf"][0]["format"] == "date"
    with pytest.raises(KeyError):
        json_schema("nope")


def test_check_required_names_each_missing_field_with_its_index() -> None:
    doc = parse_document({"document_type": "purchase_order", "lines": [
        {"item": {"upc": "1"}}, {"item": {}}, {"item": {"upc": ""}}]})
    assert check_required(doc, ["lines[].item.upc", "po_number", "carrier.scac"]) == [
        "lines[1].item.upc is required", "lines[2].item.upc is required",
        "po_number is required", "carrier.scac is required"]


def test_check_required_reports_an_empty_required_list_but_not_fields_of_absent_lines() -> None:
    doc = parse_document({"document_type": "purchase_order"})
    assert check_required(doc, ["lines[]"]) == ["lines is required"]
    assert check_required(doc, ["lines[].item.upc"]) == []


def test_check_required_accepts_plain_dicts() -> None:
    assert check_required({"parties": [{"role": "buyer"}]}, ["parties[].name"]) == [
        "parties[0].name is required"]


def test_defaults_fill_only_empty_fields_including_each_list_element() -> None:
    data: dict[str, Any] = {"document_type": "purchase_order", "currency": "",
            "lines": [{"uom": "CA"}, {}], "carrier": None}
    apply_defaults(data, {"currency": "USD", "lines[].uom": "EA", "carrier.scac": "UPSN",
                          "po_number": "X"})
    assert data["currency"] == "USD" and data["po_number"] == "X"
    assert [line.get("uom") for line in data["lines"]] == ["CA", "EA"]
    assert data["carrier"] == {"scac": "UPSN"}
    parse_document(data)
