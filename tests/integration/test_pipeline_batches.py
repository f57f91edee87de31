"""Several received messages processed in one batch (one task, one transaction), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import gateway.processing.batch as batch_module
from gateway.deliveries.service import send_deliveries
from gateway.http_pool import HttpPool
from gateway.processing.batch import process_batch
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import DELIVER, SEND_MESSAGE, RecordingPublisher
from gateway.processing.service import follow_up_many
from gateway.store.enums import Direction, MessageStatus, OutboxStatus
from gateway.store.models import Delivery, Document, Interchange, Message, OutboxEntry
from tests.conftest_pipeline import (
    RecordingServer,
    receive_http,
)

PO = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()


def po(number: int) -> bytes:
    """The fixture 850 with its own ISA13 (a new interchange each)."""
    return PO.replace(b"000000101", f"{number:09d}".encode())


@pytest.fixture
def ctx(pipeline_ctx: PipelineContext) -> PipelineContext:
    return pipeline_ctx




def _published(ctx: PipelineContext, task: str) -> list[dict[str, Any]]:
    assert isinstance(ctx.publisher, RecordingPublisher)
    return [kwargs for name, kwargs in ctx.publisher.published if name == task]


def _deliver(ctx: PipelineContext, delivery_ids: list[str]) -> None:
    pool = HttpPool(timeout=5)
    try:
        send_deliveries(ctx.db, [uuid.UUID(i) for i in delivery_ids], box=ctx.box, client=pool,
                        policy=ctx.retry_policy())
    finally:
        pool.close()


def _count(ctx: PipelineContext, model: type, *where: Any) -> int:
    with ctx.db.unit_of_work(read_only=True) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


class _Crash(BaseException):
    """The worker dying: nothing after it runs, no except clause catches it."""


def _no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a message processed on its own (the batch's fallback) fail, so a test sees the batch did it."""

    def alone(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the batch fell back to one message at a time")

    monkeypatch.setattr(batch_module, "process_message", alone)


def test_a_batch_with_one_malformed_file_delivers_the_others_and_rejects_it_with_its_error(
    ctx: PipelineContext, erp_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [receive_http(ctx, po(n)) for n in (301, 302, 303)]
    bad = receive_http(ctx, po(304).replace(b"IEA*1*000000304", b"IEA*1*000000999"))
    _no_fallback(monkeypatch)
    batch = process_batch(ctx, [*good, bad])
    assert not batch.failed and not batch.missing
    by_id = {outcome.message_id: outcome for outcome in batch.outcomes}
    assert all(by_id[i].status is MessageStatus.PROCESSED and len(by_id[i].document_ids) == 1 for i in good)
    assert by_id[bad].status is MessageStatus.REJECTED and not by_id[bad].delivery_ids

    follow_up_many(ctx, batch.outcomes, transports={})
    (deliver,) = _published(ctx, DELIVER)  # the batch's webhooks go out from one task
    assert len(deliver["delivery_ids"]) == 3
    assert len(_published(ctx, SEND_MESSAGE)) == 7  # a TA1 and a 997 each (ISA14=1), the bad one a TA1
    _deliver(ctx, deliver["delivery_ids"])
    assert sorted(r.json()["message_id"] for r in erp_server.requests) == sorted(str(i) for i in good)
    with ctx.db.unit_of_work(read_only=True) as session:
        status, error = session.execute(select(Message.status, Message.error).where(Message.id == bad)).one()
        done = session.scalars(select(OutboxEntry.status).where(
            OutboxEntry.message_id.in_([*good, bad]), OutboxEntry.task_name == "process_message")).all()
    assert status is MessageStatus.REJECTED and error is not None and "IEA" in error
    assert done == [OutboxStatus.DONE] * 4


def test_a_batch_that_crashes_midway_leaves_nothing_and_its_rerun_delivers_each_once(
    ctx: PipelineContext, erp_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [receive_http(ctx, po(n)) for n in (311, 312, 313, 314)]
    write, calls = batch_module.begin_write, []

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise _Crash
        return write(*args, **kwargs)

    monkeypatch.setattr(batch_module, "begin_write", crashing)
    with pytest.raises(_Crash):
        process_batch(ctx, ids)
    monkeypatch.setattr(batch_module, "begin_write", write)
    assert _count(ctx, Document) == 0 and _count(ctx, Delivery) == 0
    assert _count(ctx, Message, Message.direction == Direction.OUTBOUND) == 0
    assert _count(ctx, Message, Message.status == MessageStatus.RECEIVED) == 4

    _no_fallback(monkeypatch)
    first = process_batch(ctx, ids)
    again = process_batch(ctx, ids)  # a redelivered task, or the sweeper's publish
    assert all(o.status is MessageStatus.PROCESSED and len(o.document_ids) == 1 for o in first.outcomes)
    assert len(first.outcomes) == 4 and all(o.skipped for o in again.outcomes)
    follow_up_many(ctx, [*first.outcomes, *again.outcomes], transports={})
    _deliver(ctx, [i for kwargs in _published(ctx, DELIVER) for i in kwargs["delivery_ids"]])
    assert _count(ctx, Document) == 4 and _count(ctx, Delivery) == 4
    delivered = [r.json()["message_id"] for r in erp_server.requests]
    assert sorted(delivered) == sorted(str(i) for i in ids)  # each once
    assert len({r.headers["webhook-id"] for r in erp_server.requests}) == 4
    with ctx.db.unit_of_work(read_only=True) as session:  # the acks' ISA13s: numbered once, none twice
        numbers = session.scalars(select(Interchange.control_number).where(
            Interchange.direction == Direction.OUTBOUND)).all()
    assert len(numbers) == 8 and len(set(numbers)) == 8


def test_a_message_that_raises_in_a_batch_fails_alone_and_the_others_are_processed(
    ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [receive_http(ctx, po(n)) for n in (321, 322, 323)]
    write, target = batch_module.begin_write, ids[1]

    def failing(session: Any, context: Any, snap: Any, *args: Any, **kwargs: Any) -> Any:
        if snap.id == target:
            raise RuntimeError("the database said no")
        return write(session, context, snap, *args, **kwargs)

    monkeypatch.setattr(batch_module, "begin_write", failing)
    monkeypatch.setattr("gateway.processing.service.begin_write", failing)  # its run on its own fails too
    batch = process_batch(ctx, ids)
    assert list(batch.failed) == [target] and "said no" in str(batch.failed[target])
    assert sorted(o.message_id for o in batch.outcomes) == sorted(i for i in ids if i != target)
    assert all(len(o.document_ids) == 1 for o in batch.outcomes)
    with ctx.db.unit_of_work(read_only=True) as session:
        waiting = session.scalar(select(Message.status).where(Message.id == target))
    assert waiting is MessageStatus.RECEIVED  # its task tries it again


def test_the_same_bytes_twice_in_one_batch_are_an_original_and_its_duplicate(
    ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = po(331)
    first, second = receive_http(ctx, body), receive_http(ctx, body)
    _no_fallback(monkeypatch)
    batch = process_batch(ctx, [second, first])
    by_id = {outcome.message_id: outcome for outcome in batch.outcomes}
    assert not by_id[first].is_duplicate and len(by_id[first].document_ids) == 1
    assert by_id[second].is_duplicate and by_id[second].duplicate_of == first
    assert not by_id[second].document_ids and _count(ctx, Delivery) == 1


def test_the_same_isa13_twice_in_one_batch_keeps_the_first_received_as_the_original(
    ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = receive_http(ctx, po(341))
    second = receive_http(ctx, po(341).replace(b"PO-10001", b"PO-10002"))  # other bytes, same ISA13
    _no_fallback(monkeypatch)
    batch = process_batch(ctx, [second, first])
    by_id = {outcome.message_id: outcome for outcome in batch.outcomes}
    assert len(by_id[first].document_ids) == 1 and not by_id[first].is_duplicate
    assert by_id[second].is_duplicate and not by_id[second].document_ids


def test_an_isa13_seen_before_the_batch_makes_its_resend_in_the_batch_a_duplicate(
    ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = process_batch(ctx, [receive_http(ctx, po(351))]).outcomes[0]
    resend = receive_http(ctx, po(351).replace(b"PO-10001", b"PO-10003"))  # other bytes, same ISA13
    fresh = receive_http(ctx, po(352))
    _no_fallback(monkeypatch)
    batch = process_batch(ctx, [resend, fresh])
    by_id = {outcome.message_id: outcome for outcome in batch.outcomes}
    assert by_id[resend].is_duplicate and by_id[resend].duplicate_of == earlier.message_id
    assert not by_id[resend].document_ids and len(by_id[fresh].document_ids) == 1


def test_bytes_received_before_the_batch_make_their_resend_in_the_batch_a_duplicate(
    ctx: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = process_batch(ctx, [receive_http(ctx, po(361))]).outcomes[0]
    resend, fresh = receive_http(ctx, po(361)), receive_http(ctx, po(362))
    _no_fallback(monkeypatch)
    batch = process_batch(ctx, [resend, fresh])
    by_id = {outcome.message_id: outcome for outcome in batch.outcomes}
    assert by_id[resend].is_duplicate and by_id[resend].duplicate_of == earlier.message_id
    assert not by_id[resend].document_ids and len(by_id[fresh].document_ids) == 1
