"""cXML ``OrderRequest`` → canonical ``purchase_order``, parsed without entities or network.

The parser never resolves entities, never loads a DTD and never touches the network (cXML
documents name ``cXML.dtd`` by URL; it is ignored), so XXE and billion-laughs payloads are
inert; a document declaring entities is refused outright. Mapped: OrderRequestHeader
(orderID, orderDate, type, Total, ShipTo, BillTo, Comments),
the sender's credential as the buyer's id, and each ItemOut (lineNumber, quantity,
SupplierPartID, BuyerPartID, UnitPrice, Description, UnitOfMeasure, requestedDeliveryDate).
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import BaseModel, ValidationError

from translators.canonical import parse_document

MAX_XML_BYTES = 50 * 1024 * 1024
_PURPOSES = {"new": "00", "update": "05", "delete": "03"}


class CxmlError(ValueError):
    """The payload is not a usable cXML OrderRequest."""


def safe_parser() -> etree.XMLParser:
    """An lxml parser with entity resolution, DTD loading and network access switched off."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _text(node: Any) -> str | None:
    if node is None:
        return None
    text = "".join(node.itertext()).strip()
    return text or None


def _address(node: Any, role: str) -> dict[str, Any] | None:
    if node is None:
        return None
    address = node.find("Address")
    if address is None:
        return None
    party: dict[str, Any] = {"role": role}
    name = _text(address.find("Name"))
    if name:
        party["name"] = name
    if address.get("addressID"):
        party["ids"] = [{"qualifier": "addressID", "value": address.get("addressID")}]
    postal = address.find("PostalAddress")
    if postal is not None:
        fields: dict[str, Any] = {"lines": [t for s in postal.findall("Street") if (t := _text(s))]}
        for tag, key in (("City", "city"), ("State", "state"), ("PostalCode", "postal_code")):
            value = _text(postal.find(tag))
            if value:
                fields[key] = value
        country = postal.find("Country")
        if country is not None:
            fields["country"] = country.get("isoCountryCode") or _text(country)
        party["address"] = fields
    email = _text(address.find("Email"))
    if email:
        party["contacts"] = [{"email": email}]
    return party


def _money(node: Any) -> tuple[str | None, str | None]:
    money = node.find("Money") if node is not None else None
    if money is None:
        return None, None
    return _text(money), money.get("currency")


def _line(item: Any, index: int) -> dict[str, Any]:
    line: dict[str, Any] = {"line_number": item.get("lineNumber") or str(index + 1)}
    if item.get("quantity"):
        line["quantity"] = item.get("quantity").strip()
    ids = item.find("ItemID")
    article: dict[str, Any] = {}
    if ids is not None:
        if supplier := _text(ids.find("SupplierPartID")):
            article["vendor_part"] = supplier
        if buyer := _text(ids.find("BuyerPartID")):
            article["buyer_part"] = buyer
    detail = item.find("ItemDetail")
    if detail is not None:
        price, _ = _money(detail.find("UnitPrice"))
        if price:
            line["unit_price"] = price
        if description := _text(detail.find("Description")):
            article["description"] = " ".join(description.split())
        if uom := _text(detail.find("UnitOfMeasure")):
            line["uom"] = uom
    line["item"] = article
    if item.get("requestedDeliveryDate"):
        line["dates"] = [{"qualifier": "002", "date": item.get("requestedDeliveryDate")[:10]}]
    return line


def order_request_to_dict(payload: bytes) -> dict[str, Any]:
    """The canonical purchase_order fields of a cXML OrderRequest (not yet validated)."""
    if len(payload) > MAX_XML_BYTES:
        raise CxmlError(f"cXML payload exceeds {MAX_XML_BYTES} bytes")
    if b"<!ENTITY" in payload:
        raise CxmlError("entity declarations are not accepted in cXML")
    try:
        root = etree.fromstring(payload, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise CxmlError(f"payload is not well-formed XML: {exc}") from exc
    if root.tag != "cXML":
        raise CxmlError(f"root element is <{root.tag}>, expected <cXML>")
    request = root.find("Request/OrderRequest")
    if request is None:
        raise CxmlError("cXML has no Request/OrderRequest")
    header = request.find("OrderRequestHeader")
    if header is None:
        raise CxmlError("OrderRequest has no OrderRequestHeader")
    doc: dict[str, Any] = {
        "document_type": "purchase_order",
        "po_number": header.get("orderID"),
        "purpose": _PURPOSES.get((header.get("type") or "new").lower(), "00"),
    }
    order_date = header.get("orderDate")
    if order_date:
        doc["po_date"] = str(order_date)[:10]
    total, currency = _money(header.find("Total"))
    if currency:
        doc["currency"] = currency
    if total:
        doc["amounts"] = [{"qualifier": "TT", "amount": total}]
    parties = []
    credential = root.find("Header/From/Credential")
    identity = _text(credential.find("Identity")) if credential is not None else None
    if credential is not None and identity:
        parties.append(
            {"role": "buyer", "ids": [{"qualifier": credential.get("domain") or "cXML", "value": identity}]}
        )
    for tag, role in (("ShipTo", "ship_to"), ("BillTo", "bill_to")):
        party = _address(header.find(tag), role)
        if party:
            parties.append(party)
    if parties:
        doc["parties"] = parties
    comments = _text(header.find("Comments"))
    if comments:
        doc["notes"] = [{"text": comments}]
    doc["lines"] = [_line(item, i) for i, item in enumerate(request.findall("ItemOut"))]
    return {k: v for k, v in doc.items() if v is not None}


def parse_order_request(payload: bytes) -> BaseModel:
    """A validated canonical purchase order from a cXML OrderRequest."""
    data = order_request_to_dict(payload)
    try:
        return parse_document(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}" for err in exc.errors()
        )
        raise CxmlError(f"OrderRequest does not make a valid purchase_order: {problems}") from exc
