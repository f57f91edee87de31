"""End to end with a real Celery worker and beat: the ERP posts an 855, the X12 reaches the partner's
HTTP endpoint, the partner's 997 comes back and the status turns accepted; a 997 with AK5*R tells the
ERP ``ack.rejected``; no 997 at all tells it ``ack.overdue`` after ``due_at``."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest_outbound import functional_ack, sample_document
from tests.conftest_pipeline import RecordingServer, Stack, wait_until


def _erp_post(stack: Stack, partner: str, po: str) -> str:
    answer = httpx.post(
        f"{stack.api_url}/api/v1/outbound/{partner}/order_acknowledgment",
        timeout=30,
        json=sample_document("order_acknowledgment") | {"po_number": po},
        headers={"authorization": f"Bearer {stack.admin_key}", "Idempotency-Key": po},
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["message_id"])


def _received(server: RecordingServer, message_id: str, stack: Stack) -> bytes:
    def find() -> bytes | None:
        with server.lock:
            return next(
                (r.body for r in server.requests if r.headers.get("x-edigate-message-id") == message_id), None
            )

    body: bytes = wait_until(find, timeout=30, message=lambda: f"the 855 at the partner\n{stack.logs()}")
    return body


def _ack_status(stack: Stack, message_id: str) -> str:
    answer = httpx.get(
        f"{stack.api_url}/api/v1/acks",
        params={"message_id": message_id},
        timeout=10,
        headers={"authorization": f"Bearer {stack.admin_key}"},
    )
    items: list[dict[str, Any]] = answer.json()["items"]
    return str(items[0]["status"]) if items else ""


def _erp_events(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    with stack.erp.lock:
        bodies = [r.json() for r in stack.erp.requests]
    return [b for b in bodies if b.get("type") == event_type]


def test_855_reaches_the_partner_and_its_997_accepts_rejects_or_never_comes(outbound_stack: Stack) -> None:
    stack = outbound_stack
    accepted = _erp_post(stack, "acme-retail", "PO-A")
    rejected = _erp_post(stack, "acme-retail", "PO-R")
    silent = _erp_post(stack, "slow-retail", "PO-S")

    x12 = _received(stack.partner_http, accepted, stack).decode()
    assert x12.startswith("ISA*") and "ST*855*" in x12 and "BAK*00*AC*PO-A*" in x12
    assert stack.post_x12(functional_ack(x12)).status_code == 202
    wait_until(
        lambda: _ack_status(stack, accepted) == "accepted",
        timeout=30,
        message=lambda: f"the 997 to be reconciled\n{stack.logs()}",
    )

    x12 = _received(stack.partner_http, rejected, stack).decode()
    assert stack.post_x12(functional_ack(x12, set_status="R")).status_code == 202
    [event] = wait_until(
        lambda: _erp_events(stack, "ack.rejected"),
        timeout=30,
        message=lambda: f"ack.rejected at the ERP\n{stack.logs()}",
    )
    assert event["message_id"] == rejected and event["data"]["transactions"][0]["status"] == "rejected"

    _received(stack.partner_http, silent, stack)
    [overdue] = wait_until(
        lambda: _erp_events(stack, "ack.overdue"),
        timeout=40,
        message=lambda: f"ack.overdue at the ERP\n{stack.logs()}",
    )
    assert overdue["partner_id"] == "slow-retail" and overdue["message_id"] == silent
    assert _ack_status(stack, silent) == "overdue" and _ack_status(stack, accepted) == "accepted"
    sent = [e for e in _erp_events(stack, "document.sent") if e["message_id"] == accepted]
    assert sent and sent[0]["data"]["status"] == "sent"
