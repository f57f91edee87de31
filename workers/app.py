"""The Celery app: queues inbound, delivery, outbound and acks; thin tasks; the beat schedule.

Tasks carry ids only and call one service function each; the database is the truth and the
broker only a doorbell. ``task_acks_late`` + ``task_reject_on_worker_lost`` + prefetch 1 mean
a killed worker's task is redelivered; the outbox and delivery sweeps (beat) publish again
whatever a broker lost. Per-process resources (engine, HTTP clients) are made after the fork,
on first use.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_ready

from gateway.deliveries.service import send_deliveries
from gateway.http_pool import HttpPool
from gateway.processing.batch import process_batch
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import (
    DELIVER,
    PROCESS_MESSAGE,
    QUEUES,
    SEND_MESSAGE,
    SWEEP_DELIVERIES,
    SWEEP_OUTBOX,
    CeleryPublisher,
    celery_config,
)
from gateway.processing.sending import send_messages
from gateway.processing.service import fail_message, follow_up_many
from gateway.processing.tuning import PipelineTuning
from gateway.runtime import HeapSettler, settle_heap
from gateway.settings import Settings

log = logging.getLogger("edigate.workers")
MAX_TASK_RETRIES = 3
SWEEP_OVERDUE_ACKS = "edigate.sweep_overdue_acks"
FLUSH_OUTBOUND_BATCHES = "edigate.flush_outbound_batches"
CHECK_DEADLINES = "edigate.check_deadlines"
RETRY_AS2_MDNS = "edigate.retry_as2_mdns"


class WorkerResources:
    """The per-process context and HTTP clients, created after fork on first use."""

    def __init__(self, app: Celery, settings: Settings, tuning: PipelineTuning) -> None:
        self.app = app
        self.settings = settings
        self.tuning = tuning
        self._pid: int | None = None
        self._context: PipelineContext | None = None
        self._webhook_pool: Any = None
        self._transports: dict[str, Any] = {}

    def _ensure(self) -> None:
        if self._pid == os.getpid() and self._context is not None:
            return
        from gateway.transports.registry import TRANSPORT_CLASSES, load_transport

        self._pid = os.getpid()
        self._context = PipelineContext.from_settings(
            self.settings, publisher=CeleryPublisher(self.settings, app=self.app), tuning=self.tuning
        )
        self._webhook_pool = HttpPool(timeout=self.tuning.webhook_timeout_seconds)
        # Senders that keep files on this host (SFTP mailboxes) need the settings too.
        per_transport: dict[str, dict[str, Any]] = {
            "sftp": {"settings": self.settings},
            "as2": {"settings": self.settings},
        }
        self._transports = {
            name: load_transport(name, timeout=self.tuning.transport_timeout_seconds,
                                 **per_transport.get(name, {}))
            for name in TRANSPORT_CLASSES
        }

    @property
    def context(self) -> PipelineContext:
        """This process's pipeline context."""
        self._ensure()
        assert self._context is not None
        return self._context

    @property
    def webhook_pool(self) -> HttpPool:
        """This process's keep-alive connections for ERP webhooks (and async AS2 MDNs)."""
        self._ensure()
        pool: HttpPool = self._webhook_pool
        return pool

    @property
    def transports(self) -> dict[str, Any]:
        """This process's outbound transports by name."""
        self._ensure()
        return self._transports


def create_celery_app(settings: Settings | None = None, tuning: PipelineTuning | None = None) -> Celery:
    """A Celery app for the settings' broker with the pipeline's tasks and beat schedule."""
    settings = settings or Settings()
    tuning = tuning or PipelineTuning()
    app = Celery("edigate")
    app.conf.update(celery_config(settings))
    interval = tuning.sweep_interval_seconds
    app.conf.beat_schedule = {
        "sweep-outbox": {
            "task": SWEEP_OUTBOX,
            "schedule": interval,
            "options": {"queue": "acks", "expires": max(interval * 2, 1.0)},
        },
        "sweep-deliveries": {
            "task": SWEEP_DELIVERIES,
            "schedule": interval,
            "options": {"queue": "acks", "expires": max(interval * 2, 1.0)},
        },
        # Outbound documents and the acknowledgment lifecycle (gateway.outbound, gateway.acks).
        "sweep-overdue-acks": {
            "task": SWEEP_OVERDUE_ACKS,
            "schedule": interval,
            "options": {"queue": "acks", "expires": max(interval * 2, 1.0)},
        },
        "flush-outbound-batches": {
            "task": FLUSH_OUTBOUND_BATCHES,
            "schedule": interval,
            "options": {"queue": "outbound", "expires": max(interval * 2, 1.0)},
        },
        "retry-as2-mdns": {
            "task": RETRY_AS2_MDNS,
            "schedule": interval * 6,
            "options": {"queue": "delivery", "expires": max(interval * 12, 1.0)},
        },
        "check-deadlines": {
            "task": CHECK_DEADLINES,
            "schedule": interval * 12,
            "options": {"queue": "acks", "expires": max(interval * 24, 1.0)},
        },
    }
    resources = WorkerResources(app, settings, tuning)
    app.edigate_resources = resources
    _settle_heaps(resources)
    _register_tasks(app, resources)
    from gateway.transports.sftp.tasks import register_sftp_tasks

    register_sftp_tasks(app, lambda: resources.context)
    return app


def _warm_up(resources: WorkerResources) -> None:
    """Before the first task: make the context and load every transport, then freeze the heap.

    Otherwise the first task pays for the imports (the AS2 sender and its CMS code: ~1 s).
    """
    try:
        resources.transports  # noqa: B018 (the property builds the context and the senders)
    except Exception:  # the first task will report it, with its message id
        log.exception("warming the worker up failed")
    settle_heap()


def _settle_heaps(resources: WorkerResources) -> None:
    """Warm up when the worker is ready (or a prefork child starts); freeze again after its first tasks."""
    settler = HeapSettler()
    warm = lambda **_: _warm_up(resources)  # noqa: E731
    worker_ready.connect(warm, weak=False, dispatch_uid="edigate-warm-ready")
    worker_process_init.connect(warm, weak=False, dispatch_uid="edigate-warm-child")
    task_postrun.connect(lambda **_: settler.tick(), weak=False, dispatch_uid="edigate-settle-tasks")


def _register_tasks(app: Celery, res: WorkerResources) -> None:
    @app.task(name=PROCESS_MESSAGE, bind=True, max_retries=MAX_TASK_RETRIES)  # type: ignore[untyped-decorator]
    def process_message_task(
        self: Any,
        message_id: str | None = None,
        outbox_id: int | None = None,
        check_duplicates: bool = True,
        send_acks: bool = True,
        duplicate_check: bool | None = None,
        message_ids: list[str] | None = None,
        **_options: Any,
    ) -> str | list[str]:
        idents = [uuid.UUID(i) for i in ([message_id] if message_id else []) + list(message_ids or [])]
        if duplicate_check is not None:  # the replay's spelling
            check_duplicates = duplicate_check
        batch = process_batch(res.context, idents, check_duplicates=check_duplicates, send_acks=send_acks)
        for ident in batch.missing:
            log.warning("message %s not found; nothing to process", ident)
        follow_up_many(res.context, batch.outcomes, transports=res.transports)
        if batch.failed:
            if self.request.retries >= MAX_TASK_RETRIES:
                for ident, exc in batch.failed.items():
                    log.error("giving up on message %s: %s", ident, exc)
                    fail_message(res.context, ident, f"processing failed: {type(exc).__name__}: {exc}")
            else:  # only the messages that failed are tried again
                exc = next(iter(batch.failed.values()))
                again = {"check_duplicates": check_duplicates, "send_acks": send_acks,
                         "message_ids": [str(i) for i in batch.failed]}
                raise self.retry(exc=exc, kwargs=again, countdown=2**self.request.retries) from exc
        statuses = [outcome.status.value for outcome in batch.outcomes] + ["failed"] * len(batch.failed)
        if message_ids is None and message_id is not None:  # the one-message spelling answers as it did
            return statuses[0] if statuses else "missing"
        return statuses

    @app.task(name=DELIVER)  # type: ignore[untyped-decorator]
    def deliver_task(delivery_ids: list[str], outbox_id: int | None = None) -> int:
        ctx = res.context
        results, created = send_deliveries(
            ctx.db,
            [uuid.UUID(i) for i in delivery_ids],
            box=ctx.box,
            client=res.webhook_pool,
            policy=ctx.retry_policy(),
        )
        if created and ctx.publisher is not None:
            ctx.publisher.publish(DELIVER, {"delivery_ids": [str(i) for i in created]})
        return sum(1 for r in results if r.ok)

    @app.task(name=SEND_MESSAGE)  # type: ignore[untyped-decorator]
    def send_message_task(
        message_id: str | None = None,
        outbox_id: int | None = None,
        message_ids: list[str] | None = None,
        acknowledgment: bool = False,
        **_options: Any,
    ) -> list[str]:
        from gateway.outbound.scheduled import before_send, settle_hook

        idents = [uuid.UUID(i) for i in ([message_id] if message_id else []) + list(message_ids or [])]
        if _options.get("replay_of_id"):  # an outbound replay: renumber (or not) before sending
            for ident in idents:
                before_send(res.context, ident, control_numbers=_options.get("control_numbers"))
        ctx = res.context
        # An acknowledgment has no documents to mark sent and no ack clock to start.
        after = None if acknowledgment else settle_hook(ctx)
        outcomes = send_messages(ctx, idents, transports=res.transports, after=after)
        deliveries = [str(d) for outcome in outcomes for d in outcome.delivery_ids]
        if deliveries and ctx.publisher is not None:
            ctx.publisher.publish(DELIVER, {"delivery_ids": deliveries})
        return [outcome.status for outcome in outcomes]

    @app.task(name=SWEEP_OVERDUE_ACKS)  # type: ignore[untyped-decorator]
    def sweep_overdue_acks_task() -> int:
        from gateway.acks.scheduled import sweep_overdue

        return sweep_overdue(res.context)

    @app.task(name=CHECK_DEADLINES)  # type: ignore[untyped-decorator]
    def check_deadlines_task() -> int:
        from gateway.acks.scheduled import sweep_deadlines

        return sweep_deadlines(res.context)

    @app.task(name=FLUSH_OUTBOUND_BATCHES)  # type: ignore[untyped-decorator]
    def flush_outbound_batches_task() -> int:
        from gateway.outbound.scheduled import flush_batches

        return flush_batches(res.context)

    @app.task(name=SWEEP_OUTBOX)  # type: ignore[untyped-decorator]
    def sweep_outbox_task() -> int:
        from gateway.processing.sweeps import sweep_outbox

        return sweep_outbox(res.context).published

    @app.task(name=SWEEP_DELIVERIES)  # type: ignore[untyped-decorator]
    def sweep_deliveries_task() -> int:
        from gateway.processing.sweeps import sweep_deliveries

        return sweep_deliveries(res.context).published

    @app.task(name=RETRY_AS2_MDNS)  # type: ignore[untyped-decorator]
    def retry_as2_mdns_task() -> int:
        from gateway.transports.as2.mdn_delivery import retry_due_async_mdns

        ctx = res.context
        return retry_due_async_mdns(ctx.db, ctx.blobs, res.webhook_pool)


def worker_argv(
    *,
    queues: str | None = None,
    concurrency: int | None = None,
    pool: str | None = None,
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> list[str]:
    """The ``celery worker`` arguments for our queues."""
    argv = [
        "worker",
        "-Q",
        queues or ",".join(QUEUES),
        "--loglevel",
        loglevel,
        "-n",
        hostname or f"edigate-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    return argv
