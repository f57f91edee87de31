"""Phase 3's duplicate checks: the same bytes from a partner again, or an ISA envelope seen before.

Each check runs under a transaction-scoped advisory lock per key (the content, each ISA
envelope), so two transactions never both take a message for the original. One message asks the
database; a batch reads its indexes once (:func:`seen_interchanges`, :func:`seen_contents`) and
each of its messages looks there.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, tuple_
from sqlalchemy.orm import Session

from gateway.processing.context import PipelineContext
from gateway.processing.reading import Parsed, Snapshot
from gateway.processing.writer import Arrival, IsaKey, Writer
from gateway.processing.x12_parse import ParsedInterchange
from gateway.store.core import run, table_of
from gateway.store.duplicates import InterchangeRef, find_duplicate_interchange
from gateway.store.enums import Direction
from gateway.store.models import Interchange, Message
from gateway.store.types import utcnow
from translators.errors import Level, TA1Note, X12Issue

_INTERCHANGES = table_of(Interchange)
_MESSAGES = table_of(Message)
# What a batch's duplicate index starts from: inbound interchanges with one of its ISA13s.
_SEEN_ISA = (
    select(
        _INTERCHANGES.c.id,
        _INTERCHANGES.c.message_id,
        _INTERCHANGES.c.sender_qualifier,
        _INTERCHANGES.c.sender_id,
        _INTERCHANGES.c.receiver_qualifier,
        _INTERCHANGES.c.receiver_id,
        _INTERCHANGES.c.control_number,
    )
    .where(
        _INTERCHANGES.c.control_number.in_(bindparam("control_numbers", expanding=True)),
        _INTERCHANGES.c.created_at >= bindparam("since"),
        _INTERCHANGES.c.direction == Direction.INBOUND,
        _INTERCHANGES.c.is_duplicate.is_(False),
    )
    .order_by(_INTERCHANGES.c.created_at)
)
_SEEN_CONTENT = select(
    _MESSAGES.c.id, _MESSAGES.c.partner_id, _MESSAGES.c.content_sha256, _MESSAGES.c.received_at
).where(
    _MESSAGES.c.content_sha256.in_(bindparam("hashes", expanding=True)),
    _MESSAGES.c.direction == Direction.INBOUND,
    _MESSAGES.c.is_duplicate.is_(False),
    _MESSAGES.c.replay_of_id.is_(None),
)
_SAME_CONTENT = (
    select(_MESSAGES.c.id)
    .where(
        _MESSAGES.c.content_sha256 == bindparam("content_sha256"),
        _MESSAGES.c.partner_id == bindparam("partner_id"),
        _MESSAGES.c.direction == Direction.INBOUND,
        _MESSAGES.c.is_duplicate.is_(False),
        _MESSAGES.c.replay_of_id.is_(None),
        tuple_(_MESSAGES.c.received_at, _MESSAGES.c.id)
        < tuple_(bindparam("received_at", type_=_MESSAGES.c.received_at.type),
                 bindparam("message_id", type_=_MESSAGES.c.id.type)),
    )
    .order_by(_MESSAGES.c.received_at)
    .limit(1)
)
_ADVISORY_LOCKS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k")


def advisory_locks(session: Session, keys: list[str]) -> None:
    """Serialise duplicate checks per key across PostgreSQL transactions (SQLite: BEGIN IMMEDIATE).

    Keys this transaction holds already (a batch takes all of its messages' at once) are skipped.
    """
    if not keys or session.get_bind().dialect.name != "postgresql":
        return
    held: set[int] = session.info.setdefault("advisory_keys", set())
    numbers = {int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big", signed=True) for k in keys}
    numbers -= held
    if numbers:
        run(session, _ADVISORY_LOCKS, {"keys": sorted(numbers)})  # in one order everywhere: no deadlock
        held.update(numbers)


def duplicate_keys(snap: Snapshot, content_sha256: str, parsed: Parsed) -> list[str]:
    """The advisory lock keys of a message's duplicate checks: its content and each ISA envelope."""
    interchanges = parsed.x12.interchanges if parsed.x12 is not None else []
    isa_keys = ["isa:" + "|".join(isa_key(item)) for item in interchanges]
    return [f"content:{snap.partner_id}:{content_sha256}", *isa_keys]


def isa_key(parsed: ParsedInterchange) -> IsaKey:
    """An interchange's ISA key: sender and receiver (qualifier and id), and its ISA13."""
    header = parsed.outcome.header
    return (
        header.sender_qualifier,
        header.sender_id,
        header.receiver_qualifier,
        header.receiver_id,
        header.control_number,
    )


def same_content(w: Writer) -> uuid.UUID | None:
    """The earlier original message with these exact bytes from this partner, if any."""
    if w.seen_content is not None:
        earlier = w.seen_content.get((w.message.partner_id, w.message.content_sha256), [])
        mine = (w.message.received_at, w.message.id)
        return earlier[0][1] if earlier and earlier[0] < mine else None  # the earliest, if before this one
    original: uuid.UUID | None = run(
        w.session,
        _SAME_CONTENT,
        {
            "content_sha256": w.message.content_sha256,
            "partner_id": w.message.partner_id,
            "received_at": w.message.received_at,
            "message_id": w.message.id,
        },
    ).scalar()
    return original


def original_interchange(w: Writer, item: ParsedInterchange) -> InterchangeRef | None:
    """The earlier inbound interchange with this one's ids and ISA13 inside the window, if any."""
    if w.seen_isa is not None:
        return w.seen_isa.get(isa_key(item))
    sender_qualifier, sender_id, receiver_qualifier, receiver_id, control = isa_key(item)
    return find_duplicate_interchange(
        w.session,
        sender=(sender_qualifier, sender_id),
        receiver=(receiver_qualifier, receiver_id),
        control_number=control,
        window_days=w.ctx.settings.duplicate_window_days,
        now=w.now,
    )


def seen_interchanges(
    session: Session, ctx: PipelineContext, parsed: Sequence[Parsed]
) -> dict[IsaKey, InterchangeRef]:
    """The earliest inbound interchange inside the window for each ISA key of a batch (one query).

    Taken after the batch's advisory locks, so no other transaction adds one of these keys
    meanwhile; the batch adds its own as it writes them, and each message looks here instead
    of querying.
    """
    keys = {isa_key(item) for one in parsed if one.x12 is not None for item in one.x12.interchanges}
    if not keys:
        return {}
    since = utcnow() - timedelta(days=ctx.settings.duplicate_window_days)
    rows = run(session, _SEEN_ISA, {"control_numbers": sorted({key[4] for key in keys}), "since": since})
    seen: dict[IsaKey, InterchangeRef] = {}
    for row in rows:  # earliest first
        key = (row.sender_qualifier, row.sender_id, row.receiver_qualifier, row.receiver_id,
               row.control_number)
        if key in keys:
            seen.setdefault(key, InterchangeRef(row.id, row.message_id))
    return seen


def seen_contents(session: Session, locked: Sequence[Any]) -> dict[tuple[str, str], list[Arrival]]:
    """The original inbound messages sharing bytes with a batch's, by partner and hash, earliest first.

    Read after the batch's advisory locks, like :func:`seen_interchanges`; the batch's own
    messages are among them (their duplicate flags are written when the batch settles).
    """
    hashes = sorted({row.content_sha256 for row in locked})
    seen: dict[tuple[str, str], list[Arrival]] = {}
    for row in run(session, _SEEN_CONTENT, {"hashes": hashes}) if hashes else []:
        seen.setdefault((row.partner_id, row.content_sha256), []).append((row.received_at, row.id))
    for arrivals in seen.values():
        arrivals.sort()
    return seen


def duplicate_issue(item: ParsedInterchange, original_message: uuid.UUID) -> X12Issue:
    """TA105 025: this sender's ISA13 came before (the partner learns it is not processed twice)."""
    header = item.outcome.header
    return X12Issue(
        Level.INTERCHANGE,
        TA1Note.DUPLICATE_CONTROL_NUMBER,
        f"duplicate interchange: ISA13 {header.control_number} from {header.sender_qualifier}/"
        f"{header.sender_id} was received before (message {original_message})",
        offset=header.offset,
        interchange_index=header.index,
        interchange_control=header.control_number,
    )
