"""Items put from any thread, handled in batches by one background thread (started on first use).

The thread takes what is queued, up to ``max_batch``, and never waits for a batch to fill.
With ``min_interval`` it handles at most one batch per interval, so under a steady stream the
items of one interval go together while an item after a quiet interval goes at once. ``stop``
handles what is queued, then ends the thread; a later ``put`` starts a new one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """Batches of queued items for ``handle``, which must not raise (it owns its errors)."""

    def __init__(
        self, handle: Callable[[list[T]], None], *, name: str, max_batch: int, min_interval: float = 0.0
    ) -> None:
        self.name = name
        self.max_batch = max(1, max_batch)
        self.min_interval = max(0.0, min_interval)
        self._handle = handle
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, item: T) -> None:
        """Queue an item for the next batch."""
        with self._lock:  # queued under the lock: never behind the sentinel of a stop
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(item)

    def waiting(self) -> int:
        """How many items wait for a batch (approximately, as any queue size read across threads)."""
        return self._queue.qsize()

    def stop(self, timeout: float = 10.0) -> None:
        """Handle everything queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        handled_at = float("-inf")
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            wait = handled_at + self.min_interval - time.monotonic()
            if wait > 0:  # handled a moment ago: what arrives until the interval is over goes along
                time.sleep(wait)
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            handled_at = time.monotonic()
            self._handle(batch)
