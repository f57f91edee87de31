"""Concurrent SFTP closes share one intake transaction (a group commit).

Each close used to pay for a transaction of its own: the writer's turn (on SQLite a file lock
that waits for the workers' transactions), the event chain's head and the commit. Closes that
wait at the same moment now go together: one thread takes every close queued (never waiting
for more), records them all in one transaction and answers each once it has committed. A
close is still answered only after its message is committed; if the shared transaction
fails, each close's work runs again alone, so one refused upload fails only its own close.
A process that dies with closes queued leaves their spool entries, which recovery ingests.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from gateway.store.db import Database

log = logging.getLogger("edigate.sftp.intake")
T = TypeVar("T")
MAX_GROUP = 16
_Work = tuple[Callable[[Session], Any], "Future[Any]"]


class GroupCommit:
    """Runs the work of concurrent callers in one transaction, on one thread started on first use."""

    def __init__(self, db: Database, *, max_group: int = MAX_GROUP, name: str = "sftp-intake") -> None:
        self.db = db
        self.max_group = max(1, max_group)
        self.name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a transaction shared with the callers waiting now; its result after commit."""
        future: Future[T] = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put((work, future))
        return future.result()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._commit(group)

    def _commit(self, group: list[_Work]) -> None:
        if len(group) > 1:
            try:
                with self.db.unit_of_work() as session:
                    results = [work(session) for work, _ in group]
            except Exception:  # each alone below: a refused upload fails only its own close
                log.debug("a group of %d closes failed together; committing each alone", len(group))
            else:
                for (_, future), result in zip(group, results, strict=True):
                    future.set_result(result)
                return
        for work, future in group:
            try:
                with self.db.unit_of_work() as session:
                    result = work(session)
            except BaseException as exc:  # the caller raises it
                future.set_exception(exc)
            else:
                future.set_result(result)
