"""Publishing received messages from one background thread, so a transport answers without waiting
for the broker (an SFTP close, an AS2 MDN).

Intake has committed the message and its outbox row before a doorbell is queued here. One
thread publishes them in order through the single publisher (broker clients are not shared
between threads). A doorbell still queued when the process dies is rung again by the outbox
sweeper after its lease, as a publish lost on the way always was; ``stop`` rings what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading

from gateway.intake.service import Received, publish_received
from gateway.processing.publisher import Publisher
from gateway.store.db import Database

log = logging.getLogger("edigate.intake.doorbell")


class Doorbell:
    """A queue of received messages to publish, drained by its own thread (started on first use)."""

    def __init__(self, db: Database, publisher: Publisher, *, name: str = "doorbell") -> None:
        self.db = db
        self.publisher = publisher
        self.name = name
        self._queue: queue.SimpleQueue[Received | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ring(self, received: Received) -> None:
        """Queue the publish of a committed message."""
        with self._lock:  # queued under the lock: never behind the sentinel of a stop
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(received)

    def stop(self, timeout: float = 10.0) -> None:
        """Publish everything queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while (received := self._queue.get()) is not None:
            try:
                publish_received(self.db, self.publisher, received)
            except Exception:  # the outbox sweeper publishes it after the lease
                log.exception("publishing message %s failed", received.message_id)
