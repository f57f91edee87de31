"""ERP webhook deliveries: create, send (signed, retried, dead-lettered), redeliver, ERP outcomes.

A delivery row is its own outbox: ``next_attempt_at`` says when it is due and the delivery
sweep publishes due rows (leasing them for a while so the next sweep skips them). Sending
happens outside any transaction; the outcome is written afterwards under a row lock.

What an ERP sees: every attempt of a delivery carries the same ``webhook-id`` header and the
same body (its ``id`` is that webhook id); only ``webhook-timestamp`` and the signature change.
A redelivery (``POST /deliveries/{id}/redeliver``) is a new row linked by ``redelivery_of_id``
that sends the SAME ``webhook-id`` and body again, as Standard Webhooks prescribes for a
resend: an ERP that already processed the event recognises it, one that never did processes
it. The row's own ``webhook_id`` column is ``<original>.r<n>`` (the column is unique).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from gateway.deliveries.backoff import next_attempt_at
from gateway.deliveries.signing import previous_secret_signs, webhook_headers
from gateway.http_pool import HttpError, HttpPool
from gateway.secrets import SecretBox, SecretError
from gateway.store.core import insert_tables, run, table_of
from gateway.store.db import Database
from gateway.store.enums import DeliveryStatus, DocumentStatus
from gateway.store.events import append_event
from gateway.store.models import Delivery, DeliveryAttempt, Document, WebhookEndpoint
from gateway.store.types import utcnow

DOCUMENT_RECEIVED = "document.received"
DELIVERY_DEAD = "delivery.dead"
_WEBHOOK_NAMESPACE = uuid.UUID("6f1d9c2e-52a4-4c8e-9a57-2b8e3c1f0d44")
EXCERPT_LIMIT = 1000


class DeliveryError(Exception):
    """A delivery operation is not possible (unknown id, wrong state)."""


class DeliveryNotFound(DeliveryError):
    """No delivery with that id."""


@dataclass(frozen=True)
class EndpointRef:
    """An enabled endpoint subscribed to an event type."""

    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a delivery is retried."""

    window: timedelta
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    lease: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP attempt produced."""

    delivery_id: uuid.UUID
    status_code: int | None
    error: str | None
    duration_ms: int
    excerpt: str | None
    webhook_id: str | None = None  # the header's id, for the outcome's event

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_id_for(subject_id: uuid.UUID, endpoint_id: uuid.UUID, event_type: str) -> str:
    """The deterministic webhook id of an event for an endpoint: a re-run cannot make another."""
    return "msg_" + uuid.uuid5(_WEBHOOK_NAMESPACE, f"{subject_id}:{endpoint_id}:{event_type}").hex


_ENDPOINTS = table_of(WebhookEndpoint)
_LIVE_ENDPOINTS = (
    select(_ENDPOINTS.c.id, _ENDPOINTS.c.name, _ENDPOINTS.c.events)
    .where(_ENDPOINTS.c.enabled.is_(True), _ENDPOINTS.c.deleted_at.is_(None))
    .order_by(_ENDPOINTS.c.name)
)
_LIVE_ENDPOINT_NAMED = _LIVE_ENDPOINTS.where(_ENDPOINTS.c.name == bindparam("name"))


def subscribed_endpoints(session: Session, event_type: str, *, name: str | None = None) -> list[EndpointRef]:
    """Enabled endpoints listening to ``event_type`` (``*`` subscribes to all), optionally one by name."""
    rows = (
        run(session, _LIVE_ENDPOINTS) if name is None else run(session, _LIVE_ENDPOINT_NAMED, {"name": name})
    )
    return [
        EndpointRef(row.id, row.name)
        for row in rows
        if event_type in (row.events or []) or "*" in (row.events or [])
    ]


class NewDelivery(TypedDict):
    """What a new delivery is made of (the keywords of ``delivery_row``)."""

    endpoint_id: uuid.UUID
    event_type: str
    subject_id: uuid.UUID
    payload: dict[str, Any]
    partner_id: str | None
    document_id: uuid.UUID | None
    message_id: uuid.UUID | None
    correlation_id: str
    policy: RetryPolicy
    now: datetime


def delivery_row(**new: Unpack[NewDelivery]) -> dict[str, Any]:
    """The column values of a new pending delivery; its webhook id derives from subject and endpoint."""
    event_type, now, policy = new["event_type"], new["now"], new["policy"]
    webhook_id = webhook_id_for(new["subject_id"], new["endpoint_id"], event_type)
    return {
        "id": uuid.uuid4(),
        "webhook_id": webhook_id,
        "endpoint_id": new["endpoint_id"],
        "event_type": event_type,
        "partner_id": new["partner_id"],
        "document_id": new["document_id"],
        "message_id": new["message_id"],
        "payload": {"id": webhook_id, "type": event_type, **new["payload"]},
        "status": DeliveryStatus.PENDING,
        "attempt_count": 0,
        "next_attempt_at": now + policy.lease,
        "give_up_at": now + policy.window,
        "delivered_at": None,
        "redelivery_of_id": None,
        "correlation_id": new["correlation_id"],
        "created_at": now,
    }


_EXISTING_WEBHOOK_IDS = select(Delivery.webhook_id, Delivery.id).where(
    Delivery.webhook_id.in_(bindparam("webhook_ids", expanding=True))
)


def create_deliveries(session: Session, news: Sequence[NewDelivery]) -> list[uuid.UUID]:
    """Pending deliveries, their webhook ids derived from subject and endpoint (idempotent), in two
    statements; their ids in order (an existing delivery's own for a webhook id already known)."""
    rows = [delivery_row(**new) for new in news]
    if not rows:
        return []
    found = run(session, _EXISTING_WEBHOOK_IDS, {"webhook_ids": [r["webhook_id"] for r in rows]})
    known: dict[str, uuid.UUID] = {row.webhook_id: row.id for row in found}
    fresh: list[dict[str, Any]] = []
    for row in rows:
        if row["webhook_id"] not in known:
            known[row["webhook_id"]] = row["id"]
            fresh.append(row)
    insert_tables(session, [(table_of(Delivery), fresh)])
    return [known[row["webhook_id"]] for row in rows]


def header_webhook_id(delivery: Delivery) -> str:
    """The ``webhook-id`` an ERP sees: the original's id for every attempt and redelivery."""
    value = delivery.payload.get("id")
    return value if isinstance(value, str) else delivery.webhook_id


def body_bytes(delivery: Delivery) -> bytes:
    """The JSON body sent for a delivery (the same bytes on every attempt)."""
    return payload_bytes(delivery.payload)


def payload_bytes(payload: dict[str, Any]) -> bytes:
    """A delivery payload as its webhook body: compact JSON, UTF-8, keys in stored order."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class _Prepared:
    delivery_id: uuid.UUID
    url: str | None
    secrets: list[str]
    webhook_id: str
    body: bytes
    problem: str | None


@dataclass
class _Settling:
    """A locked delivery and the outcome its attempt gives it."""

    id: uuid.UUID
    partner_id: str | None
    message_id: uuid.UUID | None
    document_id: uuid.UUID | None
    correlation_id: str
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    give_up_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None = None


_DELIVERIES = table_of(Delivery)
_ATTEMPTS = table_of(DeliveryAttempt)
_DOCUMENTS = table_of(Document)
_DELIVERY_IDS: BindParameter[Any] = bindparam("delivery_ids", expanding=True)
_DUE_WITH_ENDPOINT = (
    select(
        _DELIVERIES.c.id,
        _DELIVERIES.c.webhook_id,
        _DELIVERIES.c.payload,
        _ENDPOINTS.c.id.label("endpoint_id"),
        _ENDPOINTS.c.url,
        _ENDPOINTS.c.secret_ciphertext,
        _ENDPOINTS.c.previous_secret_ciphertext,
        _ENDPOINTS.c.previous_secret_until,
        _ENDPOINTS.c.enabled,
        _ENDPOINTS.c.deleted_at,
    )
    .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
    .where(_DELIVERIES.c.id.in_(_DELIVERY_IDS), _DELIVERIES.c.status == DeliveryStatus.PENDING)
)
_LOCK_DELIVERIES = (
    select(
        _DELIVERIES.c.id,
        _DELIVERIES.c.partner_id,
        _DELIVERIES.c.message_id,
        _DELIVERIES.c.document_id,
        _DELIVERIES.c.correlation_id,
        _DELIVERIES.c.event_type,
        _DELIVERIES.c.status,
        _DELIVERIES.c.attempt_count,
        _DELIVERIES.c.give_up_at,
        _DELIVERIES.c.next_attempt_at,
    )
    .where(_DELIVERIES.c.id.in_(_DELIVERY_IDS))
    .order_by(_DELIVERIES.c.id)
    .with_for_update()
)
_INSERT_ATTEMPTS = insert(_ATTEMPTS)
_SETTLE_DELIVERY = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("target_id"))
    .values(
        status=bindparam("new_status"),
        attempt_count=bindparam("new_attempt_count"),
        next_attempt_at=bindparam("new_next_attempt_at"),
        delivered_at=bindparam("new_delivered_at"),
    )
)
# One delivery settled in one PostgreSQL statement: its attempt and its document in CTEs.
_SETTLE_ONE = _SETTLE_DELIVERY.add_cte(
    insert(_ATTEMPTS)
    .values(
        delivery_id=bindparam("target_id"),
        attempted_at=bindparam("a_attempted_at"),
        status_code=bindparam("a_status_code"),
        error=bindparam("a_error"),
        duration_ms=bindparam("a_duration_ms"),
        response_excerpt=bindparam("a_response_excerpt"),
    )
    .cte("attempt")
).add_cte(
    update(_DOCUMENTS)
    .where(
        _DOCUMENTS.c.id == bindparam("a_delivered_document"), _DOCUMENTS.c.status == DocumentStatus.RECEIVED
    )
    .values(status=DocumentStatus.DELIVERED)
    .cte("document")
)
_DOCUMENTS_DELIVERED = (
    update(_DOCUMENTS)
    .where(_DOCUMENTS.c.id.in_(bindparam("document_ids", expanding=True)),
           _DOCUMENTS.c.status == DocumentStatus.RECEIVED)
    .values(status=DocumentStatus.DELIVERED)
)


def _prepare(session: Session, ids: Sequence[uuid.UUID], box: SecretBox) -> list[_Prepared]:
    prepared = []
    now = utcnow()
    for row in run(session, _DUE_WITH_ENDPOINT, {"delivery_ids": list(ids)}):
        secrets: list[str] = []
        problem: str | None = None
        if not row.enabled or row.deleted_at is not None:
            problem = "endpoint is disabled or deleted"
        else:
            context = f"webhook:{row.endpoint_id}"
            try:
                secrets.append(box.decrypt_text(row.secret_ciphertext, context=context))
                if previous_secret_signs(row.previous_secret_ciphertext, row.previous_secret_until, now):
                    secrets.append(box.decrypt_text(row.previous_secret_ciphertext, context=context))
            except SecretError as exc:
                problem = f"cannot decrypt the endpoint secret: {exc}"
        webhook_id = row.payload.get("id")
        prepared.append(
            _Prepared(
                row.id,
                row.url,
                secrets,
                webhook_id if isinstance(webhook_id, str) else row.webhook_id,
                payload_bytes(row.payload),
                problem,
            )
        )
    return prepared


def _attempt(client: HttpPool, item: _Prepared) -> AttemptResult:
    started = time.monotonic()
    if item.problem is not None or not item.secrets or item.url is None:
        problem = item.problem or "not deliverable"
        return AttemptResult(item.delivery_id, None, problem, 0, None, item.webhook_id)
    headers = webhook_headers(item.secrets, item.webhook_id, int(time.time()), item.body)
    try:
        response = client.post(item.url, content=item.body, headers=headers)
    except HttpError as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        failure = f"{type(exc).__name__}: {exc}"[:EXCERPT_LIMIT]
        return AttemptResult(item.delivery_id, None, failure, elapsed, None, item.webhook_id)
    elapsed = int((time.monotonic() - started) * 1000)
    excerpt = response.content[: EXCERPT_LIMIT * 4].decode("utf-8", "replace")[:EXCERPT_LIMIT] or None
    error = None if response.is_success else f"HTTP {response.status_code}"
    return AttemptResult(item.delivery_id, response.status_code, error, elapsed, excerpt, item.webhook_id)


def send_deliveries(
    db: Database,
    ids: Sequence[uuid.UUID],
    *,
    box: SecretBox,
    client: HttpPool,
    policy: RetryPolicy,
) -> tuple[list[AttemptResult], list[uuid.UUID]]:
    """Attempt every pending delivery of ``ids``; returns the attempts and new deliveries to publish."""
    if not ids:
        return [], []
    with db.unit_of_work(read_only=True) as session:
        prepared = _prepare(session, ids, box)
    results = [_attempt(client, item) for item in prepared]
    if not results:
        return [], []
    with db.unit_of_work() as session:
        created = record_attempts(session, results, policy=policy, now=utcnow())
    return results, created


def record_attempts(
    session: Session,
    results: Iterable[AttemptResult],
    *,
    policy: RetryPolicy,
    now: datetime,
) -> list[uuid.UUID]:
    """Store attempts and move deliveries on (delivered, retry later, or dead); returns new deliveries."""
    by_id = {r.delivery_id: r for r in results}
    rows = run(session, _LOCK_DELIVERIES, {"delivery_ids": list(by_id)})
    locked = [_Settling(**row._mapping) for row in rows]
    settled: list[_Settling] = []
    dead: list[_Settling] = []
    attempts: list[dict[str, Any]] = []
    grouped: dict[tuple[str, uuid.UUID | None], list[tuple[_Settling, dict[str, Any]]]] = {}
    for delivery in locked:
        result = by_id[delivery.id]
        if delivery.status is not DeliveryStatus.PENDING:
            continue  # a concurrent run already settled it
        attempts.append(
            {
                "delivery_id": delivery.id,
                "attempted_at": now,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
                "response_excerpt": result.excerpt,
            }
        )
        settled.append(delivery)
        delivery.attempt_count += 1
        event_data = {
            "webhook_id": result.webhook_id,
            "attempt": delivery.attempt_count,
            "status_code": result.status_code,
            "error": result.error,
        }
        if result.ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            grouped.setdefault(("delivery.delivered", delivery.message_id), []).append((delivery, event_data))
            continue
        retry_at = next_attempt_at(
            now,
            delivery.attempt_count,
            give_up_at=delivery.give_up_at,
            base=policy.backoff_seconds,
            cap=policy.backoff_max_seconds,
        )
        if retry_at is not None:
            delivery.next_attempt_at = retry_at
            grouped.setdefault(("delivery.failed", delivery.message_id), []).append(
                (delivery, {**event_data, "retry_at": retry_at.isoformat()})
            )
            continue
        delivery.status = DeliveryStatus.DEAD
        delivery.next_attempt_at = None
        _event(session, delivery, "delivery.dead", event_data)
        dead.append(delivery)
    if not settled:
        return []
    _write_settled(session, settled, attempts)
    _grouped_events(session, grouped)
    created: list[uuid.UUID] = []
    for delivery in dead:
        if delivery.event_type != DELIVERY_DEAD:
            row = session.get(Delivery, delivery.id, populate_existing=True)
            assert row is not None
            created.extend(_notify_dead(session, row, policy=policy, now=now))
    return created


def _write_settled(session: Session, settled: list[_Settling], attempts: list[dict[str, Any]]) -> None:
    """The attempts, the deliveries' new state and their delivered documents."""
    changes = [
        {
            "target_id": d.id,
            "new_status": d.status,
            "new_attempt_count": d.attempt_count,
            "new_next_attempt_at": d.next_attempt_at,
            "new_delivered_at": d.delivered_at,
        }
        for d in settled
    ]
    delivered_docs = [
        d.document_id for d in settled if d.status is DeliveryStatus.DELIVERED and d.document_id is not None
    ]
    if len(settled) == 1 and session.get_bind().dialect.name == "postgresql":
        attempt = {f"a_{name}": value for name, value in attempts[0].items() if name != "delivery_id"}
        document = {"a_delivered_document": delivered_docs[0] if delivered_docs else None}
        run(session, _SETTLE_ONE, changes[0] | attempt | document)
        return
    run(session, _INSERT_ATTEMPTS, attempts)
    run(session, _SETTLE_DELIVERY, changes)
    if delivered_docs:
        run(session, _DOCUMENTS_DELIVERED, {"document_ids": delivered_docs})


def _grouped_events(
    session: Session, grouped: dict[tuple[str, uuid.UUID | None], list[tuple[_Settling, dict[str, Any]]]]
) -> None:
    """One event per outcome and message: a batch of deliveries is one timeline entry, not N."""
    for (event_type, _), members in grouped.items():
        if len(members) == 1:
            _event(session, members[0][0], event_type, members[0][1])
            continue
        first = members[0][0]
        append_event(
            session,
            event_type=event_type,
            actor="worker",
            partner_id=first.partner_id,
            message_id=first.message_id,
            subject_type="delivery",
            correlation_id=first.correlation_id,
            data={"deliveries": [{"delivery_id": str(d.id), **data} for d, data in members]},
        )


def _event(
    session: Session,
    delivery: Delivery | _Settling,
    event_type: str,
    data: dict[str, Any],
    *,
    actor: str = "worker",
) -> None:
    append_event(
        session,
        event_type=event_type,
        actor=actor,
        partner_id=delivery.partner_id,
        message_id=delivery.message_id,
        subject_type="delivery",
        subject_id=delivery.id,
        correlation_id=delivery.correlation_id,
        data=data,
    )


def _notify_dead(session: Session, dead: Delivery, *, policy: RetryPolicy, now: datetime) -> list[uuid.UUID]:
    """``delivery.dead`` webhooks to the other endpoints subscribed to it."""
    payload = {
        "partner_id": dead.partner_id,
        "document_type": dead.payload.get("document_type"),
        "message_id": str(dead.message_id) if dead.message_id else None,
        "data": {
            "delivery_id": str(dead.id),
            "webhook_id": header_webhook_id(dead),
            "event_type": dead.event_type,
            "attempts": dead.attempt_count,
        },
    }
    return create_deliveries(session, [
        NewDelivery(endpoint_id=endpoint.id, event_type=DELIVERY_DEAD, subject_id=dead.id, payload=payload,
                    partner_id=dead.partner_id, document_id=dead.document_id, message_id=dead.message_id,
                    correlation_id=dead.correlation_id, policy=policy, now=now)
        for endpoint in subscribed_endpoints(session, DELIVERY_DEAD)
        if endpoint.id != dead.endpoint_id
    ])


def claim_due_deliveries(
    session: Session,
    *,
    lease: timedelta,
    limit: int = 500,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Pending deliveries that are due, leased so the next sweep skips them while they run."""
    moment = now or utcnow()
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= moment)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.next_attempt_at = moment + lease
    return [row.id for row in rows]


# --- the API's operations ----------------------------------------------------------------


def get_delivery(session: Session, delivery_id: uuid.UUID) -> Delivery:
    """One delivery (``DeliveryNotFound`` otherwise)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"delivery {delivery_id} not found")
    return delivery


def list_deliveries(
    session: Session,
    *,
    status: DeliveryStatus | None = None,
    partner_id: str | None = None,
    document_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Deliveries newest first, filtered, after a keyset cursor (created_at, id)."""
    query = select(Delivery)
    if status is not None:
        query = query.where(Delivery.status == status)
    if partner_id is not None:
        query = query.where(Delivery.partner_id == partner_id)
    if document_id is not None:
        query = query.where(Delivery.document_id == document_id)
    if message_id is not None:
        query = query.where(Delivery.message_id == message_id)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            (Delivery.created_at < created_at)
            | ((Delivery.created_at == created_at) & (Delivery.id < last_id))
        )
    return list(session.scalars(query.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)))


def redeliver(session: Session, delivery_id: uuid.UUID, *, policy: RetryPolicy, actor: str) -> Delivery:
    """A new pending delivery of the same event (same webhook-id and body), due at once."""
    original = get_delivery(session, delivery_id)
    root = session.get(Delivery, original.redelivery_of_id) if original.redelivery_of_id else original
    assert root is not None
    count = (
        session.scalar(select(func.count()).select_from(Delivery).where(Delivery.redelivery_of_id == root.id))
        or 0
    )
    now = utcnow()
    row = Delivery(
        id=uuid.uuid4(),
        webhook_id=f"{root.webhook_id}.r{count + 1}",
        endpoint_id=original.endpoint_id,
        event_type=original.event_type,
        partner_id=original.partner_id,
        document_id=original.document_id,
        message_id=original.message_id,
        payload=dict(root.payload),
        status=DeliveryStatus.PENDING,
        attempt_count=0,
        next_attempt_at=now + policy.lease,
        give_up_at=now + policy.window,
        redelivery_of_id=root.id,
        correlation_id=original.correlation_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _event(
        session,
        row,
        "delivery.redelivery_requested",
        {"redelivery_of": str(original.id), "webhook_id": header_webhook_id(row)},
        actor=actor,
    )
    return row


def record_erp_outcome(
    session: Session,
    delivery_id: uuid.UUID,
    *,
    accepted: bool,
    actor: str,
    reason: str | None = None,
    reference: str | None = None,
) -> Delivery:
    """The ERP's later business answer: accepted (document delivered) or failed (document failed)."""
    delivery = get_delivery(session, delivery_id)
    if delivery.status is not DeliveryStatus.DELIVERED:
        raise DeliveryError(
            f"delivery {delivery_id} is {delivery.status.value}; only a delivered one "
            "can be accepted or failed"
        )
    if delivery.document_id is not None:
        document = session.get(Document, delivery.document_id)
        if document is not None:
            document.status = DocumentStatus.DELIVERED if accepted else DocumentStatus.FAILED
    _event(
        session,
        delivery,
        "delivery.accepted" if accepted else "delivery.rejected_by_erp",
        {
            "webhook_id": header_webhook_id(delivery),
            "reason": reason,
            "reference": reference,
            "document_id": str(delivery.document_id) if delivery.document_id else None,
        },
        actor=actor,
    )
    return delivery
