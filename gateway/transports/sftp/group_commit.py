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
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from gateway.batch_queue import BatchQueue
from gateway.store.db import Database

log = logging.getLogger("edigate.sftp.intake")
T = TypeVar("T")
MAX_GROUP = 16
_Work = tuple[Callable[[Session], Any], "Future[Any]"]


class GroupCommit:
    """Runs the work of concurrent callers in one transaction, on one thread started on first use."""

    def __init__(self, db: Database, *, max_group: int = MAX_GROUP, name: str = "sftp-intake") -> None:
        self.db = db
        self._queue: BatchQueue[_Work] = BatchQueue(self._commit, name=name, max_batch=max_group)

    def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a transaction shared with the callers waiting now; its result after commit."""
        future: Future[T] = Future()
        self._queue.put((work, future))
        return future.result()

    def waiting(self) -> int:
        """How many callers wait for the next transaction."""
        return self._queue.waiting()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        self._queue.stop(timeout)

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
