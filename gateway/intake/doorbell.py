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
import queue
import threading
import time

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
        self.name = name
        self.batch_size = max(1, batch_size)
        self.min_interval = max(0.0, min_interval)
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
        rung_at = float("-inf")
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            wait = rung_at + self.min_interval - time.monotonic()
            if wait > 0:  # rung a moment ago: what arrives until the interval is over goes along
                time.sleep(wait)
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            rung_at = time.monotonic()
            try:
                publish_received_many(self.db, self.publisher, batch)
            except Exception:  # the outbox sweeper publishes them after the lease
                log.exception("publishing messages %s failed", [r.message_id for r in batch])
