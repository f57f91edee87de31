"""Timing knobs of the pipeline (``EDIGATE_*`` variables): sweeps, leases, webhook backoff.

They live beside :class:`gateway.settings.Settings` rather than in it because only the
pipeline reads them and tests shrink them to seconds; the defaults suit production.
"""

from __future__ import annotations

import functools
import os

from pydantic_settings import BaseSettings, SettingsConfigDict


class PipelineTuning(BaseSettings):
    """How often sweeps run, how long a task may take, how webhooks back off."""

    model_config = SettingsConfigDict(env_prefix="EDIGATE_", extra="ignore", frozen=True)

    sweep_interval_seconds: float = 5.0  # beat: outbox and delivery sweeps
    task_lease_seconds: float = 300.0  # a published task not finished by then is published again
    webhook_timeout_seconds: float = 10.0
    webhook_backoff_seconds: float = 5.0  # first retry delay; doubles per attempt
    webhook_backoff_max_seconds: float = 3600.0
    webhook_retry_seconds: float | None = None  # overrides Settings.webhook_retry_hours (tests)
    transport_timeout_seconds: float = 30.0
    transport_max_attempts: int = 8  # outbound sends (acks) before the message is failed
    worker_pool: str = "threads"  # celery pool of `edigate worker`: threads | prefork | solo
    worker_concurrency: int | None = None  # tasks at once per worker: 4 threads, or CPU count processes
    worker_processes: int | None = None  # `edigate serve`'s worker processes; one per core, at most 4
    sweep_batch_size: int = 500


_VARIABLES = tuple(f"EDIGATE_{name.upper()}" for name in PipelineTuning.model_fields)


THREADS_PER_WORKER = 4  # more only add GIL hand-offs: 18.4 -> 15.6 ms of CPU per SFTP file going 8 -> 3


def worker_concurrency(tuning: PipelineTuning, pool: str) -> int:
    """Tasks one worker runs at once: threads wait on I/O in parallel, processes need a core each."""
    if tuning.worker_concurrency:
        return tuning.worker_concurrency
    return THREADS_PER_WORKER if pool == "threads" else os.cpu_count() or 1


def current_tuning() -> PipelineTuning:
    """The tuning for the environment as it is now, built again only when one of its variables changed."""
    # Building the settings parses the environment (~1 ms) and even scanning every variable
    # costs ~0.1 ms; hot paths ask on every message, so only this model's variables are read.
    return _tuning_for(tuple(os.environ.get(name) for name in _VARIABLES))


@functools.lru_cache(maxsize=8)
def _tuning_for(_environment: tuple[str | None, ...]) -> PipelineTuning:
    return PipelineTuning()
