"""What receiving keeps per app: caches checked on every message and the doorbell.

Our parsed keys and the partners' AS2 setups are cached, and so is the setup last used for each
sender; every message confirms it against the database (on PostgreSQL in the statement that takes
its Message-ID's lock), so a change made by any process applies to the next message.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ScalarSelect, Select, bindparam, func, select
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobStore
from gateway.intake.doorbell import Doorbell
from gateway.intake.service import Received, default_lease
from gateway.processing.publisher import Publisher
from gateway.secrets import SecretBox
from gateway.store.core import run
from gateway.store.db import Database
from gateway.transports.as2 import cms
from gateway.transports.as2.certificates import KEY_PAIR_LISTING, key_pair_listing, load_key_pairs
from gateway.transports.as2.partners import (
    PARTNER_STAMP,
    As2Partner,
    PartnerCache,
    find_partner_id_by_as2_id,
    partner_stamp,
)


def _aggregated(query: Select[Any]) -> ScalarSelect[Any]:
    rows = query.subquery()
    return select(func.json_agg(rows.table_valued())).scalar_subquery()


_STAMPS = select(_aggregated(PARTNER_STAMP).label("partner"), _aggregated(KEY_PAIR_LISTING).label("keys"))
_LOCK_AND_STAMPS = _STAMPS.add_columns(func.pg_advisory_xact_lock(bindparam("lock")))


def setup_stamps(session: Session, partner_id: str | None, *, lock: int | None = None) -> object:
    """What a sender setup is read from (the partner's stamp, our key listing), compared for changes.

    On PostgreSQL one statement, which also takes the advisory ``lock`` when given; SQLite
    serialises its writers without one.
    """
    if session.get_bind().dialect.name != "postgresql":
        return (partner_stamp(session, partner_id) if partner_id else (), key_pair_listing(session))
    statement, params = (_STAMPS, {}) if lock is None else (_LOCK_AND_STAMPS, {"lock": lock})
    row = run(session, statement, {"partner_id": partner_id or "", **params}).one()
    return (row.partner, row.keys)


@dataclass(frozen=True)
class SenderSetup:
    """A sender's partner (None: unknown), our key pairs and AS2 names, and what they were read from."""

    partner_id: str | None
    partner: As2Partner | None
    keys: list[cms.KeyPair]
    names: frozenset[str]
    stamps: object  # setup_stamps when it was read


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
    _setups: dict[str, SenderSetup] = field(default_factory=dict, repr=False)

    def ring(self, received: Received) -> None:
        """Publish a received message's task from the background (after the answer went out)."""
        with self._lock:
            if self._doorbell is None:
                if self.publisher is None:  # nothing to ring: the outbox sweeper publishes it
                    return
                self._doorbell = Doorbell(self.db, self.publisher, name="as2-doorbell")
            doorbell = self._doorbell
        doorbell.ring(received)

    def keys(self, session: Session) -> tuple[list[cms.KeyPair], set[str]]:
        """Our active key pairs (signing one first) and AS2 names; keys are parsed once per process."""
        listing = key_pair_listing(session)
        with self._lock:
            cached, parsed = self._keys, dict(self._parsed)
        if cached is not None and cached[0] == listing:
            return cached[1], set(cached[2])
        active = [key_id for key_id, _, status in listing if status == "active"]
        parsed.update(load_key_pairs(session, self.box, [k for k in active if k not in parsed]))
        pairs = [parsed[key_id] for key_id in active if key_id in parsed]
        names = {as2_id for _, as2_id, _ in listing}
        with self._lock:
            self._parsed = parsed
            self._keys = (listing, pairs, names)
        return pairs, set(names)

    def load_setup(self, session: Session, as2_from: str) -> SenderSetup:
        """Read the sender's partner and our keys (through the caches) and remember them for ``as2_from``."""
        partner_id = find_partner_id_by_as2_id(session, as2_from)
        # Stamps first: a change landing in between makes them older than the data, never newer.
        stamps = setup_stamps(session, partner_id)
        partner = self.partners.get(session, partner_id, self.box) if partner_id else None
        pairs, names = self.keys(session)
        setup = SenderSetup(partner_id, partner, pairs, frozenset(names), stamps)
        with self._lock:
            if partner is not None:
                self._setups[as2_from] = setup
            else:
                self._setups.pop(as2_from, None)
        return setup

    def cached_setup(self, as2_from: str) -> SenderSetup | None:
        """The setup last read for a known sender, to be confirmed with ``is_current`` before it counts."""
        with self._lock:
            return self._setups.get(as2_from)

    def is_current(self, session: Session, setup: SenderSetup, *, lock: int | None = None) -> bool:
        """Whether nothing the setup was read from has changed since (see ``setup_stamps``)."""
        return setup_stamps(session, setup.partner_id, lock=lock) == setup.stamps

    def forget_keys(self) -> None:
        """Compare with the database again on the next message (after a key change)."""
        with self._lock:
            self._keys = None
            self._setups.clear()

    @property
    def lease(self) -> timedelta:
        """How long intake's outbox row waits for its publish."""
        return default_lease()
