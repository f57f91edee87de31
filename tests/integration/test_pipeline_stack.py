"""The whole flow with real processes: uvicorn API, a celery worker and beat, a real ERP server.

Runs once on the embedded default (SQLite + kombu's SQLAlchemy broker) and once on
PostgreSQL + Redis.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gateway.deliveries.signing import verify
from gateway.store.enums import MessageStatus
from gateway.store.models import Document, Message
from tests.conftest_pipeline import Stack, wait_until

pytestmark = pytest.mark.integration
PO = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()


def interchange(number: int) -> bytes:
    """The fixture 850 as a new interchange."""
    return PO.replace(b"000000101", f"{number:09d}".encode()).replace(b"PO-10001", f"PO-{number}".encode())


def test_posted_850_reaches_the_erp_signed_and_the_997_reaches_the_partner(stack: Stack) -> None:
    answer = stack.post_x12(interchange(301))
    assert answer.status_code == 202, answer.text
    message_id = answer.json()["message_id"]
    wait_until(lambda: stack.erp.requests, timeout=60, message=lambda: f"the webhook\n{stack.logs()}")
    hook = stack.erp.requests[0]
    verify(stack.webhook_secret, hook.headers, hook.body, now=int(time.time()))
    body = hook.json()
    assert body["type"] == "document.received" and body["message_id"] == message_id
    assert body["data"]["po_number"] == "PO-301"
    wait_until(
        lambda: any(b"ST*997" in r.body for r in stack.partner_http.requests),
        timeout=30,
        message="the 997 at the partner",
    )
    with stack.db.unit_of_work() as session:
        message = session.get(Message, __import__("uuid").UUID(message_id))
        assert message is not None and message.status is MessageStatus.PROCESSED


def test_partner_json_and_cxml_are_delivered_as_purchase_orders(stack: Stack) -> None:
    headers = {"authorization": f"Bearer {stack.partner_key}"}
    url = f"{stack.api_url}/api/v1/inbound/acme-retail"
    shop = httpx.post(
        url,
        headers={**headers, "content-type": "application/json"},
        content=b'{"order": {"id": "WEB-7", "items": [{"sku": "A", "qty": 1, "price": 2}]}}',
    )
    cxml = httpx.post(url, headers={**headers, "content-type": "text/xml"}, content=CXML)
    assert shop.status_code == 202 and cxml.status_code == 202
    wait_until(
        lambda: len(stack.erp.requests) >= 2, timeout=60, message=lambda: f"two webhooks\n{stack.logs()}"
    )
    numbers = sorted(r.json()["data"]["po_number"] for r in stack.erp.requests)
    assert numbers == ["CX-1", "WEB-7"]
    with stack.db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 2


CXML = b"""<?xml version="1.0"?>
<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.014/cXML.dtd">
<cXML payloadID="1@shop" timestamp="2026-01-05T10:00:00Z">
  <Header><From><Credential domain="DUNS"><Identity>123456789</Identity></Credential></From></Header>
  <Request><OrderRequest>
    <OrderRequestHeader orderID="CX-1" orderDate="2026-01-05T10:00:00Z" type="new">
      <Total><Money currency="USD">20.00</Money></Total>
    </OrderRequestHeader>
    <ItemOut quantity="2" lineNumber="1">
      <ItemID><SupplierPartID>SP-1</SupplierPartID></ItemID>
      <ItemDetail><UnitPrice><Money currency="USD">10.00</Money></UnitPrice>
        <Description xml:lang="en">Widget</Description><UnitOfMeasure>EA</UnitOfMeasure></ItemDetail>
    </ItemOut>
  </OrderRequest></Request>
</cXML>"""
