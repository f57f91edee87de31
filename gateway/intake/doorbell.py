"""Publishing received messages from one background thread, so a transport answers without waiting
for the broker (an SFTP close, an AS2 MDN).

Intake has committed the message and its outbox row before a doorbell is queued here. One
thread publishes them in order through the single publisher (broker clients are not shared
between threads). A doorbell still queued when the process dies is rung again by the outbox
sweeper after its lease, as a publish lost on the way always was; ``stop`` rings what is queued.

Several messages queued together go out as ONE task (up to ``batch_size``), which a worker
processes in one transaction. The thread never waits for a batch to fill: it takes what is
queued. With ``min_interval`` it rings at most once per interval, so under a steady stream the
messages of one interval share a task; a message arriving after a quiet interval goes at once.
"""

from __future__ import annotations

import logging

from gateway.batch_queue import BatchQueue
from gateway.intake.service import Received, publish_received_many
from gateway.processing.publisher import Publisher
from gateway.store.db import Database

log = logging.getLogger("edigate.intake.doorbell")
DEFAULT_BATCH_SIZE = 20


class Doorbell:
    """A queue of received messages to publish, drained by its own thread (started on first use)."""

    def __init__(self, db: Database, publisher: Publisher, *, name: str = "doorbell",
                 batch_size: int = DEFAULT_BATCH_SIZE, min_interval: float = 0.0) -> None:
        self.db = db
        self.publisher = publisher
        self._queue = BatchQueue(self._publish, name=name, max_batch=batch_size, min_interval=min_interval)

    def ring(self, received: Received) -> None:
        """Queue the publish of a committed message."""
        self._queue.put(received)

    def stop(self, timeout: float = 10.0) -> None:
        """Publish everything queued, then end the thread."""
        self._queue.stop(timeout)

    def _publish(self, batch: list[Received]) -> None:
        try:
            publish_received_many(self.db, self.publisher, batch)
        except Exception:  # the outbox sweeper publishes them after the lease
            log.exception("publishing messages %s failed", [r.message_id for r in batch])
