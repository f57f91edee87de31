"""``/healthz`` (alive), ``/readyz`` (database and broker reachable) and ``/metrics`` (Prometheus).

The probes need no key: they are what load balancers and orchestrators call, and they answer
only ok / not ok per dependency (never URLs or error texts that could reveal hosts).
``/metrics`` carries partner ids and volumes, so it needs an admin or auditor key
(Prometheus: ``authorization: {credentials: <key>}`` in the scrape config). It is written in
the text exposition format from a handful of aggregate queries, so every API process reports
the same numbers and nothing is kept in process memory.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import case, func, null, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gateway.api.auth import Principal, require_roles
from gateway.api.errors import error_body
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.enums import AckStatus, ApiKeyRole, MessageStatus, OutboxStatus
from gateway.store.models import (
    AckExpectation,
    DeadlineAlert,
    Delivery,
    DeliveryAttempt,
    Document,
    Message,
    OutboxEntry,
)
from gateway.store.types import utcnow
from gateway.transports.as2.health import expiry_metrics as as2_expiry_metrics
from gateway.transports.as2.health import expiry_warnings as as2_expiry_warnings

router = APIRouter(tags=["health"])
read_metrics = require_roles(ApiKeyRole.AUDITOR)
log = logging.getLogger("edigate.health")

PROBE_TIMEOUT_SECONDS = 2.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNFINISHED = (MessageStatus.RECEIVED, MessageStatus.PROCESSING, MessageStatus.QUEUED,
               MessageStatus.SENDING)
_WAITING = (OutboxStatus.PENDING, OutboxStatus.ENQUEUED)
_NEEDS_REVIEW = (AckStatus.OVERDUE, AckStatus.REJECTED)


# --- probes -------------------------------------------------------------------------------


def check_database(database: Database) -> None:
    """Raise unless the database answers ``SELECT 1``."""
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def check_broker(url: str, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Raise unless the Celery broker is reachable (SQLite file, Redis PING, or a TCP connect)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme.startswith("sqla+"):
        _check_sqla_broker(url[len("sqla+"):], timeout)
    elif scheme in ("redis", "rediss"):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            if not client.ping():
                raise ConnectionError("redis did not answer PING")
        finally:
            client.close()
    else:
        parsed = make_url(url) if "://" in url else None
        if parsed is None or not parsed.host:
            raise ValueError(f"cannot probe broker scheme {scheme!r}")
        default_ports = {"amqp": 5672, "amqps": 5671, "pyamqp": 5672}
        port = parsed.port or default_ports.get(scheme)
        if port is None:
            raise ValueError(f"cannot probe broker scheme {scheme!r} without a port")
        with socket.create_connection((parsed.host, port), timeout=timeout):
            pass


def _check_sqla_broker(url: str, timeout: float) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        database = Database.from_url(url, connect_args={"connect_timeout": int(timeout) or 1})
        try:
            check_database(database)
        finally:
            database.dispose()
        return
    path = Path(parsed.database or "")
    if not path.exists():
        # The worker creates the broker file on start; until then the folder must be writable.
        folder = path.parent
        if not folder.is_dir() or not _writable(folder):
            raise FileNotFoundError("broker folder is missing or not writable")
        return
    connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout)
    try:
        connection.execute("SELECT 1").fetchone()
    finally:
        connection.close()


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK)


def _probe(name: str, check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log only
        log.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
def readyz(request: Request) -> JSONResponse:
    """Ready when the database and the broker answer; 503 (error envelope) otherwise."""
    settings: Settings = request.app.state.settings
    database: Database = request.app.state.db
    checks = {
        "database": _probe("database", lambda: check_database(database)),
        "broker": _probe("broker", lambda: check_broker(settings.effective_broker_url())),
    }
    if all(c["ok"] for c in checks.values()):
        with database.unit_of_work(read_only=True) as session:
            expiring = as2_expiry_warnings(session)
        # Expiring certificates warn; they do not make the gateway unready.
        return JSONResponse({"status": "ready", "checks": checks, "warnings": expiring})
    failed = sorted(name for name, c in checks.items() if not c["ok"])
    return JSONResponse(error_body("not_ready", f"unreachable: {', '.join(failed)}", {"checks": checks}),
                        status_code=503)


# --- metrics ------------------------------------------------------------------------------


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label(value: object) -> str:
    return "" if value is None else str(getattr(value, "value", value))


class MetricsWriter:
    """Collects metric families and renders the Prometheus text format."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, labels: Sequence[str],
               samples: Iterable[tuple[Sequence[object], float]]) -> None:
        """Add one metric family with its samples (label values in ``labels`` order)."""
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for values, number in samples:
            pairs = ",".join(f'{k}="{_escape(_label(v))}"' for k, v in zip(labels, values, strict=True))
            series = f"{name}{{{pairs}}}" if pairs else name
            self._lines.append(f"{series} {_number(number)}")

    def render(self) -> str:
        """The exposition text."""
        return "\n".join(self._lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _age(now: datetime, oldest: datetime | None) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


def _grouped(session: Session, columns: Sequence[Any], *where: Any, oldest: Any = None
             ) -> list[tuple[tuple[Any, ...], int, Any]]:
    """``(label values, count, min(oldest))`` per group of ``columns`` among rows matching ``where``."""
    query = select(*columns, func.count(), func.min(oldest) if oldest is not None else null())
    query = query.where(*where).group_by(*columns)
    width = len(columns)
    return [(tuple(row[:width]), int(row[width]), row[width + 1]) for row in session.execute(query)]


def collect_metrics(session: Session) -> str:
    """The gateway's metrics in Prometheus text format, from aggregate queries."""
    now = utcnow()
    out = MetricsWriter()

    def counts(name: str, help_text: str, labels: Sequence[str], columns: Sequence[Any], *where: Any) -> None:
        rows = _grouped(session, columns, *where)
        out.family(name, "gauge", help_text, labels, ((values, n) for values, n, _ in rows))

    def waiting(name: str, what: str, label: str, column: Any, started: Any, *where: Any) -> None:
        rows = _grouped(session, [column], *where, oldest=started)
        out.family(name, "gauge", f"{what}.", (label,), ((v, n) for v, n, _ in rows))
        out.family(f"{name}_oldest_age_seconds", "gauge", f"Age in seconds of the oldest of: {what}.",
                   (label,), ((v, _age(now, oldest)) for v, _, oldest in rows))

    counts("edigate_messages", "Messages by partner, direction, transport and status.",
           ("partner", "direction", "transport", "status"),
           (Message.partner_id, Message.direction, Message.transport, Message.status))
    counts("edigate_documents", "Canonical documents by partner, direction, type and status.",
           ("partner", "direction", "document_type", "status"),
           (Document.partner_id, Document.direction, Document.document_type, Document.status))
    waiting("edigate_messages_unfinished", "Messages received or queued, not finished (processing latency)",
            "direction", Message.direction, Message.received_at, Message.status.in_(_UNFINISHED))
    waiting("edigate_queue", "Outbox entries waiting to run (queue latency)", "task", OutboxEntry.task_name,
            OutboxEntry.created_at, OutboxEntry.status.in_(_WAITING))
    counts("edigate_queue_failed", "Outbox entries that gave up, by task.", ("task",),
           (OutboxEntry.task_name,), OutboxEntry.status == OutboxStatus.FAILED)
    counts("edigate_deliveries", "Webhook deliveries by event type and status.", ("event_type", "status"),
           (Delivery.event_type, Delivery.status))
    outcome = case((DeliveryAttempt.status_code.between(200, 299), "success"),
                   (DeliveryAttempt.status_code.is_not(None), "http_error"), else_="network_error")
    counts("edigate_delivery_attempts", "Webhook delivery attempts by outcome.", ("outcome",), (outcome,))
    counts("edigate_ack_expectations", "Expected acknowledgments by partner and state.",
           ("partner", "status"), (AckExpectation.partner_id, AckExpectation.status))
    counts("edigate_ack_review_queue", "Overdue or rejected acknowledgments awaiting review.", ("partner",),
           (AckExpectation.partner_id,), AckExpectation.status.in_(_NEEDS_REVIEW),
           AckExpectation.reviewed_at.is_(None))
    group_level = AckExpectation.transaction_id.is_(None)
    overdue = _grouped(session, [AckExpectation.partner_id], group_level,
                       AckExpectation.status == AckStatus.OVERDUE, AckExpectation.reviewed_at.is_(None),
                       oldest=AckExpectation.due_at)
    out.family("edigate_ack_overdue_oldest_age_seconds", "gauge",
               "Seconds since the oldest unreviewed overdue acknowledgment was due, per partner.",
               ("partner",),
               ((v, _age(now, oldest)) for v, _, oldest in overdue))
    counts("edigate_ack_groups", "Expected acknowledgments of sent groups by partner, ack type and state.",
           ("partner", "ack_type", "status"),
           (AckExpectation.partner_id, AckExpectation.ack_type, AckExpectation.status), group_level)
    counts("edigate_deadline_alerts", "Business-deadline alerts raised, by partner and level.",
           ("partner", "level"), (DeadlineAlert.partner_id, DeadlineAlert.level))
    return out.render()


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, _: Principal = Depends(read_metrics)) -> PlainTextResponse:  # noqa: B008
    """Prometheus metrics: messages, documents, queue latency, deliveries and ack states."""
    started = time.perf_counter()
    with request.app.state.db.unit_of_work(read_only=True) as session:
        body = collect_metrics(session)
        body += "\n".join(as2_expiry_metrics(session)) + "\n"
    body += (f"# HELP edigate_metrics_scrape_seconds Time taken to compute these metrics.\n"
             f"# TYPE edigate_metrics_scrape_seconds gauge\n"
             f"edigate_metrics_scrape_seconds {time.perf_counter() - started:.6f}\n")
    return PlainTextResponse(body, media_type=PROMETHEUS_CONTENT_TYPE)
