"""Business numbers of a canonical document (PO, shipment, invoice, BOL) for lookups."""

from __future__ import annotations

from typing import Any

PRIMARY_REFERENCE = {
    "purchase_order": "po_number",
    "order_acknowledgment": "po_number",
    "ship_notice": "shipment_id",
    "invoice": "invoice_number",
}
MAX_VALUE = 100


def business_references(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(qualifier, value) pairs found in a canonical document dict, without repeats."""
    found: list[tuple[str, str]] = []

    def add(qualifier: str, value: Any) -> None:
        if isinstance(value, str) and value.strip():
            pair = (qualifier, value.strip()[:MAX_VALUE])
            if pair not in found:
                found.append(pair)

    for key in (
        "po_number",
        "shipment_id",
        "invoice_number",
        "bill_of_lading",
        "seller_order_number",
        "release_number",
        "contract_number",
    ):
        add(key, data.get(key))
    for order in data.get("orders") or []:
        if isinstance(order, dict):
            add("po_number", order.get("po_number"))
    carrier = data.get("carrier")
    if isinstance(carrier, dict):
        add("tracking_number", carrier.get("tracking_number"))
    return found


def primary_reference(document_type: str, data: dict[str, Any]) -> str | None:
    """The one number a document is best known by (BEG03, BSN02, BIG02 …)."""
    value = data.get(PRIMARY_REFERENCE.get(document_type, ""))
    return value[:MAX_VALUE] if isinstance(value, str) and value else None
