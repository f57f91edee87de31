"""The doorbell: publish task ids to Celery queues; the database stays the source of truth.

Gateway code never imports the workers package: it publishes tasks by name through a
:class:`Publisher`. The Celery configuration shared by publishers and workers lives here too.
A failed publish is logged and forgotten: the outbox and delivery sweeps publish again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.settings import Settings

log = logging.getLogger("edigate.publisher")

PROCESS_MESSAGE = "edigate.process_message"
DELIVER = "edigate.deliver"
SEND_MESSAGE = "edigate.send_message"
SWEEP_OUTBOX = "edigate.sweep_outbox"
SWEEP_DELIVERIES = "edigate.sweep_deliveries"

# Outbox rows name their work briefly; the Celery task names are namespaced.
OUTBOX_PROCESS_MESSAGE = "process_message"
OUTBOX_SEND_MESSAGE = "send_message"
OUTBOX_TASKS: dict[str, str] = {
    OUTBOX_PROCESS_MESSAGE: PROCESS_MESSAGE,
    OUTBOX_SEND_MESSAGE: SEND_MESSAGE,
    "deliver": DELIVER,
}

QUEUES = ("inbound", "delivery", "outbound", "acks")
TASK_QUEUES: dict[str, str] = {
    PROCESS_MESSAGE: "inbound",
    DELIVER: "delivery",
    SEND_MESSAGE: "outbound",
    SWEEP_OUTBOX: "acks",
    SWEEP_DELIVERIES: "acks",
}


def task_for_outbox(task_name: str) -> str:
    """The Celery task an outbox row's ``task_name`` stands for."""
    return OUTBOX_TASKS.get(task_name, task_name)


class Publisher(Protocol):
    """Something that rings the doorbell for a task."""

    def publish(self, task_name: str, kwargs: dict[str, Any]) -> bool:
        """Publish one task; False when it could not be published (the sweeps cover it)."""
        ...


@dataclass
class RecordingPublisher:
    """A publisher that only remembers what it was asked to publish (tests, dry runs)."""

    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    def publish(self, task_name: str, kwargs: dict[str, Any]) -> bool:
        """Record the task; pretend a broker outage when ``fail`` is set."""
        if self.fail:
            return False
        self.published.append((task_name, kwargs))
        return True


def task_queues() -> list[Any]:
    """One direct exchange and routing key per queue, so each task lands in exactly one queue."""
    from kombu.entity import Exchange, Queue

    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]  # type: ignore[no-untyped-call]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by the API (publishing) and the workers (consuming)."""
    broker = settings.effective_broker_url()
    transport_options: dict[str, Any] = {}
    prefetch = 1  # Redis delivers as soon as a slot frees; one at a time keeps the queues fair
    if broker.startswith("sqla+"):
        from gateway.processing.sqla_broker import broker_url

        broker = broker_url(broker)
        transport_options["polling_interval"] = 0.05
        # The polling transport fetches only for free slots and then sleeps a polling interval;
        # a few reserved tasks per process keep it busy. A fetched task has left the table, so
        # a crash loses the reserved ones to the outbox and delivery sweeps, which publish again.
        prefetch = 4
    elif broker.startswith(("redis://", "rediss://")):
        transport_options["visibility_timeout"] = 3600
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "result_backend": settings.result_backend,
        "task_ignore_result": settings.result_backend is None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": prefetch,
        "task_default_queue": "inbound",
        "task_queues": task_queues(),
        "task_routes": {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_pool_limit": 4,
    }


class CeleryPublisher:
    """Publishes through a Celery client app made from the settings (created on first use)."""

    def __init__(self, settings: Settings, app: Any = None) -> None:
        self._settings = settings
        self._app = app

    def _celery(self) -> Any:
        if self._app is None:
            from celery import Celery

            app = Celery("edigate-client", set_as_current=False)
            app.conf.update(celery_config(self._settings))
            self._app = app
        return self._app

    def publish(self, task_name: str, kwargs: dict[str, Any]) -> bool:
        """Send the task by name to its queue, without retrying a broker that is down."""
        try:
            # Plain reprs: Celery's own (saferepr, for monitoring) cost ~15% of a publish.
            self._celery().send_task(
                task_name,
                kwargs=kwargs,
                queue=TASK_QUEUES.get(task_name),
                retry=False,
                argsrepr="()",
                kwargsrepr=repr(kwargs),
            )
        except Exception as exc:
            log.warning("could not publish %s (%s); the sweeper will publish it", task_name, exc)
            return False
        return True
