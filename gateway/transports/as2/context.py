"""What receiving keeps per app: caches checked on every message, the SQLite write queue, the doorbell.

Our parsed keys and the partners' AS2 setups are cached and compared with the database on every
message (one small query each), so a change made by any process applies to the next message.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobStore
from gateway.intake.service import Received, default_lease, publish_received
from gateway.processing.publisher import Publisher
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.transports.as2 import cms
from gateway.transports.as2.certificates import key_pair_listing, load_key_pairs
from gateway.transports.as2.partners import PartnerCache

log = logging.getLogger("edigate.as2")


class Doorbell:
    """Rings intake's doorbell (``publish_received``) from one background thread, off the request path.

    A publish that never happens (crash, broker down) is covered by the outbox sweeper: the
    row is committed before the doorbell is rung.
    """

    def __init__(self, db: Database, publisher: Publisher | None) -> None:
        self._db, self._publisher = db, publisher
        self._queue: queue.SimpleQueue[Received] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ring(self, received: Received) -> None:
        """Publish the message's processing task soon."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="as2-doorbell", daemon=True)
                self._thread.start()
        self._queue.put(received)

    def _run(self) -> None:
        while True:
            received = self._queue.get()
            try:
                publish_received(self._db, self._publisher, received)
            except Exception:  # the sweeper publishes what we could not
                log.exception("could not publish message %s", received.message_id)


@dataclass
class ReceiveContext:
    """What receiving needs: database, archive, secret box, publisher and limits, plus per-app caches."""

    db: Database
    blobs: BlobStore
    box: SecretBox
    publisher: Publisher | None = None
    max_bytes: int | None = None
    partners: PartnerCache = field(default_factory=PartnerCache, repr=False)
    _keys: tuple[tuple[tuple[uuid.UUID, str, str], ...], list[cms.KeyPair], set[str]] | None = field(
        default=None, repr=False
    )
    _parsed: dict[uuid.UUID, cms.KeyPair] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _doorbell: Doorbell | None = field(default=None, repr=False)

    def ring(self, received: Received) -> None:
        """Publish a received message's task from the background (after the answer went out)."""
        with self._lock:
            if self._doorbell is None:
                self._doorbell = Doorbell(self.db, self.publisher)
            doorbell = self._doorbell
        doorbell.ring(received)

    def keys(self, session: Session) -> tuple[list[cms.KeyPair], set[str]]:
        """Our active key pairs (signing one first) and AS2 names; keys are parsed once per process."""
        listing = key_pair_listing(session)
        with self._lock:
            cached, parsed = self._keys, dict(self._parsed)
        if cached is not None and cached[0] == listing:
            return cached[1], cached[2]
        active = [key_id for key_id, _, status in listing if status == "active"]
        parsed.update(load_key_pairs(session, self.box, [k for k in active if k not in parsed]))
        pairs = [parsed[key_id] for key_id in active if key_id in parsed]
        names = {as2_id for _, as2_id, _ in listing}
        with self._lock:
            self._parsed = parsed
            self._keys = (listing, pairs, names)
        return pairs, set(names)

    def forget_keys(self) -> None:
        """Compare with the database again on the next message (after a key change)."""
        with self._lock:
            self._keys = None

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A read-write unit of work (on SQLite its writers queue in the store, see ``store.db``)."""
        with self.db.unit_of_work() as session:
            yield session

    @property
    def lease(self) -> timedelta:
        """How long intake's outbox row waits for its publish."""
        return default_lease()
