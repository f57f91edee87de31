"""cXML OrderRequest → purchase_order, with entities, DTDs and the network switched off."""

from __future__ import annotations

import pytest

from gateway.inbound.cxml import CxmlError, order_request_to_dict, parse_order_request

ORDER = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.014/cXML.dtd">
<cXML payloadID="123@buyer" timestamp="2026-01-05T10:00:00-08:00">
  <Header>
    <From><Credential domain="NetworkID"><Identity>AN01000000001</Identity></Credential></From>
    <To><Credential domain="DUNS"><Identity>987654321</Identity></Credential></To>
  </Header>
  <Request deploymentMode="test">
    <OrderRequest>
      <OrderRequestHeader orderID="PO-CX-77" orderDate="2026-01-05T10:00:00-08:00" type="new">
        <Total><Money currency="USD">61.00</Money></Total>
        <ShipTo><Address addressID="DC7"><Name xml:lang="en">Acme DC 7</Name>
          <PostalAddress><Street>7 Depot Rd</Street><City>Joliet</City><State>IL</State>
            <PostalCode>60431</PostalCode><Country isoCountryCode="US">United States</Country></PostalAddress>
        </Address></ShipTo>
        <Comments xml:lang="en">Dock 4</Comments>
      </OrderRequestHeader>
      <ItemOut quantity="3" lineNumber="1" requestedDeliveryDate="2026-01-20">
        <ItemID><SupplierPartID>WID-1</SupplierPartID><BuyerPartID>ACME-123</BuyerPartID></ItemID>
        <ItemDetail><UnitPrice><Money currency="USD">20.33</Money></UnitPrice>
          <Description xml:lang="en">Blue   widget</Description><UnitOfMeasure>EA</UnitOfMeasure></ItemDetail>
      </ItemOut>
    </OrderRequest>
  </Request>
</cXML>"""


def test_order_request_becomes_a_purchase_order() -> None:
    doc = parse_order_request(ORDER).model_dump(mode="json", exclude_none=True)
    assert (doc["po_number"], doc["po_date"], doc["currency"], doc["purpose"]) == (
        "PO-CX-77",
        "2026-01-05",
        "USD",
        "00",
    )
    ship_to = next(p for p in doc["parties"] if p["role"] == "ship_to")
    assert ship_to["name"] == "Acme DC 7" and ship_to["address"]["city"] == "Joliet"
    assert ship_to["address"]["country"] == "US"
    buyer = next(p for p in doc["parties"] if p["role"] == "buyer")
    assert buyer["ids"] == [{"qualifier": "NetworkID", "value": "AN01000000001"}]
    line = doc["lines"][0]
    assert (line["quantity"], line["unit_price"], line["uom"]) == ("3", "20.33", "EA")
    assert line["item"]["vendor_part"] == "WID-1" and line["item"]["description"] == "Blue widget"
    assert line["dates"][0]["date"] == "2026-01-20" and doc["notes"] == [{"text": "Dock 4"}]


def test_external_entities_are_refused() -> None:
    xxe = b"""<?xml version="1.0"?>
<!DOCTYPE cXML [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<cXML><Request><OrderRequest><OrderRequestHeader orderID="&secret;"/></OrderRequest></Request></cXML>"""
    with pytest.raises(CxmlError, match="entit"):
        order_request_to_dict(xxe)


def test_entity_expansion_bombs_are_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE cXML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<cXML><Request><OrderRequest><OrderRequestHeader orderID="&c;"/></OrderRequest></Request></cXML>"""
    with pytest.raises(CxmlError, match="entit"):
        order_request_to_dict(bomb)


def test_the_cxml_dtd_named_by_url_is_not_fetched() -> None:
    offline = ORDER.replace(b"http://xml.cxml.org", b"http://127.0.0.1:9")  # nothing listens there
    assert order_request_to_dict(offline)["po_number"] == "PO-CX-77"


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"not xml", "well-formed"),
        (b"<Order/>", "<Order>"),
        (b"<cXML><Request/></cXML>", "OrderRequest"),
        (b"<cXML><Request><OrderRequest/></Request></cXML>", "OrderRequestHeader"),
    ],
)
def test_unusable_payloads_are_refused_with_a_reason(payload: bytes, message: str) -> None:
    with pytest.raises(CxmlError, match=message):
        order_request_to_dict(payload)
