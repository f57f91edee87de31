"""What the pipeline's service functions share: database, archive, settings, keys, timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.processing.publisher import Publisher
from gateway.processing.tuning import PipelineTuning
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database


@dataclass
class PipelineContext:
    """One process's handles on the database, archive, secret box and publisher."""

    db: Database
    blobs: BlobStore
    settings: Settings
    box: SecretBox
    publisher: Publisher | None = None
    tuning: PipelineTuning = field(default_factory=PipelineTuning)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        publisher: Publisher | None = None,
        tuning: PipelineTuning | None = None,
    ) -> PipelineContext:
        """A context for the settings' database and archive."""
        return cls(
            db=db or Database.from_settings(settings),
            blobs=BlobStore(settings.archive_dir()),
            settings=settings,
            box=SecretBox.from_settings(settings),
            publisher=publisher,
            tuning=tuning or PipelineTuning(),
        )

    @property
    def lease(self) -> timedelta:
        """How long a published task may run before the sweeps publish it again."""
        return timedelta(seconds=self.tuning.task_lease_seconds)

    def retry_policy(self) -> RetryPolicy:
        """The webhook retry policy from settings and tuning."""
        window = (
            self.tuning.webhook_retry_seconds
            if self.tuning.webhook_retry_seconds is not None
            else self.settings.webhook_retry_hours * 3600.0
        )
        return RetryPolicy(
            window=timedelta(seconds=window),
            backoff_seconds=self.tuning.webhook_backoff_seconds,
            backoff_max_seconds=self.tuning.webhook_backoff_max_seconds,
            timeout_seconds=self.tuning.webhook_timeout_seconds,
            lease=self.lease,
        )
