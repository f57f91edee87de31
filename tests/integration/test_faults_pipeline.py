"""Faults for real: SIGKILL of the worker mid-task, a Redis restart with work queued, the ERP down."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.store.enums import DeliveryStatus, MessageStatus
from gateway.store.models import Delivery, Document, Message
from tests.conftest_pipeline import PrivateRedis, Stack, build_stack, wait_until

pytestmark = pytest.mark.integration
PO = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()


def interchange(number: int) -> bytes:
    """The fixture 850 as a new interchange."""
    return PO.replace(b"000000101", f"{number:09d}".encode()).replace(b"PO-10001", f"PO-{number}".encode())


def _counts(stack: Stack) -> tuple[int, int]:
    with stack.db.unit_of_work() as session:
        documents = session.scalar(select(func.count()).select_from(Document)) or 0
        deliveries = session.scalar(select(func.count()).select_from(Delivery)) or 0
    return documents, deliveries


def test_sigkill_of_the_worker_mid_delivery_ends_with_one_document_and_one_webhook_id(
    bare_stack: Stack,
) -> None:
    stack = bare_stack
    stack.erp.delay = 3.0  # the worker is inside the deliver task when it dies
    stack.start_beat()
    worker = stack.start_worker()
    assert stack.post_x12(interchange(401)).status_code == 202
    wait_until(lambda: _counts(stack)[1] == 1, timeout=60, message=lambda: f"a delivery\n{stack.logs()}")
    time.sleep(1.0)  # the deliver task is now waiting on the slow ERP
    worker.kill()
    stack.erp.delay = 0.0
    stack.start_worker()
    wait_until(lambda: stack.erp.requests, timeout=60, message=lambda: f"the webhook\n{stack.logs()}")
    time.sleep(2.0)  # anything duplicated would arrive now
    assert _counts(stack) == (1, 1)
    assert len(stack.erp.webhook_ids()) == 1


def test_sigkill_of_the_worker_mid_processing_still_translates_the_message_once(bare_stack: Stack) -> None:
    stack = bare_stack
    stack.start_beat()
    message_ids = [stack.post_x12(interchange(410 + i)).json()["message_id"] for i in range(5)]
    worker = stack.start_worker()
    time.sleep(1.5)
    worker.kill()
    stack.start_worker()
    wait_until(
        lambda: len(stack.erp.webhook_ids()) == 5, timeout=90, message=lambda: f"5 webhooks\n{stack.logs()}"
    )
    time.sleep(2.0)
    assert _counts(stack) == (5, 5) and len(stack.erp.webhook_ids()) == 5
    with stack.db.unit_of_work() as session:
        statuses = set(
            session.scalars(select(Message.status).where(Message.id.in_([uuid.UUID(m) for m in message_ids])))
        )
    assert statuses == {MessageStatus.PROCESSED}


def test_redis_restarted_with_work_queued_loses_nothing(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    private_redis: PrivateRedis,
    erp_server: object,
    partner_http: object,
) -> None:
    builder = build_stack(
        "postgres",
        tmp_path,
        request,
        erp_server,
        partner_http,  # type: ignore[arg-type]
        broker_url=private_redis.url,
    )
    stack = next(builder)
    try:
        for i in range(3):  # queued in Redis, no worker yet
            assert stack.post_x12(interchange(420 + i)).status_code == 202
        private_redis.kill()  # the queued tasks are gone with it
        private_redis.start()
        stack.start_worker()
        stack.start_beat()
        wait_until(
            lambda: len(stack.erp.webhook_ids()) == 3,
            timeout=90,
            message=lambda: f"3 webhooks after the restart\n{stack.logs()}",
        )
        assert _counts(stack) == (3, 3)
    finally:
        builder.close()


def test_erp_down_is_retried_and_nothing_is_lost(stack: Stack) -> None:
    stack.erp.stop()
    assert stack.post_x12(interchange(430)).status_code == 202

    def attempted() -> bool:
        with stack.db.unit_of_work() as session:
            return bool(session.scalar(select(func.max(Delivery.attempt_count))))

    wait_until(attempted, timeout=60, message=lambda: f"a failed attempt\n{stack.logs()}")
    stack.erp.restart()
    wait_until(
        lambda: stack.erp.requests,
        timeout=60,
        message=lambda: f"the webhook after the ERP is back\n{stack.logs()}",
    )

    def delivered() -> Delivery:
        with stack.db.unit_of_work() as session:
            return session.scalars(select(Delivery)).one()

    # The worker records the outcome just after the ERP answered.
    wait_until(lambda: delivered().status is DeliveryStatus.DELIVERED, timeout=30,
               message=lambda: f"the delivery recorded as delivered\n{stack.logs()}")
    assert delivered().attempt_count >= 2
