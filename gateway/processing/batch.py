"""Processing several received messages in one task: one read, ONE write transaction, one follow-up.

A busy gateway pays most per message for what surrounds the work (a task, a commit, an fsync,
the hash-chained events' flush), so messages that are ready together are processed together:
phase 1 reads them all with one query, phase 2 parses each, phase 3 runs in one transaction:
it locks them all (one statement, in id order), takes their duplicate-check locks and reads
what their duplicate checks need (one statement each), writes each message in the order they
arrived as :func:`process_message` would, numbers all their acks at once and inserts and
settles them together. A malformed file is not an exception: it is rejected with its errors
like any other, beside the accepted ones.

If anything raises in the shared transaction it is rolled back as a whole, and each message is
then processed on its own (its own transaction), so one message's fault fails only that message.
A crash mid-batch rolls everything back; the re-run finds every message unprocessed once more.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.processing.context import PipelineContext
from gateway.processing.duplicate_checks import (
    advisory_locks,
    duplicate_keys,
    seen_contents,
    seen_interchanges,
)
from gateway.processing.outcome import FINISHED, MessageNotFound, ProcessOutcome
from gateway.processing.reading import Parsed, Snapshot, parse_message, read_many
from gateway.processing.service import process_message
from gateway.processing.writing import (
    LOCK_MESSAGES,
    begin_write,
    complete_writes,
    mark_outbox_done,
    settle_messages,
)
from gateway.store.core import run

log = logging.getLogger("edigate.processing")


@dataclass
class BatchOutcome:
    """What processing a batch did: an outcome per processed message, the errors of those that failed."""

    outcomes: list[ProcessOutcome] = field(default_factory=list)
    missing: list[uuid.UUID] = field(default_factory=list)
    failed: dict[uuid.UUID, Exception] = field(default_factory=dict)


def process_batch(
    ctx: PipelineContext,
    message_ids: Sequence[uuid.UUID],
    *,
    check_duplicates: bool = True,
    send_acks: bool = True,
) -> BatchOutcome:
    """Process received messages together (idempotent); the caller publishes their follow-up work."""
    ids = sorted(set(message_ids))
    if len(ids) == 1:
        return _alone(ctx, ids, check_duplicates=check_duplicates, send_acks=send_acks)
    result = BatchOutcome()
    snaps = _read_all(ctx, ids, result)
    finished = [s.id for s in snaps if s.status in FINISHED]
    # In the order they arrived: of two with the same ISA13, the first received is the original.
    todo = sorted((s for s in snaps if s.status not in FINISHED), key=_arrival)
    if finished:
        with ctx.db.unit_of_work() as session:
            for message_id in finished:
                mark_outbox_done(session, message_id)
        result.outcomes += [ProcessOutcome(s.id, s.status, skipped=True) for s in snaps if s.id in finished]
    parsed: list[tuple[Snapshot, Parsed]] = []
    alone: list[uuid.UUID] = []
    for snap in todo:
        try:
            parsed.append((snap, parse_message(ctx, snap)))
        except Exception:  # its own run reports it (and retries it) without holding the others up
            log.exception("parsing message %s failed; processing it on its own", snap.id)
            alone.append(snap.id)
    if parsed:
        try:
            result.outcomes += _write_all(ctx, parsed, check_duplicates=check_duplicates, send_acks=send_acks)
        except Exception:
            log.exception("a batch of %d messages failed; processing each on its own", len(parsed))
            alone += [snap.id for snap, _ in parsed]
    if alone:
        single = _alone(ctx, alone, check_duplicates=check_duplicates, send_acks=send_acks)
        result.outcomes += single.outcomes
        result.missing += single.missing
        result.failed.update(single.failed)
    return result


def _alone(
    ctx: PipelineContext, ids: Sequence[uuid.UUID], *, check_duplicates: bool, send_acks: bool
) -> BatchOutcome:
    """Each message in its own run of :func:`process_message`; one's failure is only its own."""
    result = BatchOutcome()
    for message_id in ids:
        try:
            result.outcomes.append(
                process_message(ctx, message_id, check_duplicates=check_duplicates, send_acks=send_acks,
                                publish=False)
            )
        except MessageNotFound:
            result.missing.append(message_id)
        except Exception as exc:
            result.failed[message_id] = exc
    return result


def _read_all(ctx: PipelineContext, ids: Sequence[uuid.UUID], result: BatchOutcome) -> list[Snapshot]:
    """Phase 1 for every message in one read transaction; unknown ones are noted as missing."""
    with ctx.db.unit_of_work(read_only=True) as session:
        snaps, missing = read_many(session, ctx, ids)
    result.missing += missing
    return snaps


def _write_all(
    ctx: PipelineContext,
    parsed: Sequence[tuple[Snapshot, Parsed]],
    *,
    check_duplicates: bool,
    send_acks: bool,
) -> list[ProcessOutcome]:
    """Phase 3 for every message in ONE transaction; their rows locked first, all in one statement."""
    with ctx.db.unit_of_work() as session:
        locked = run(session, LOCK_MESSAGES, {"message_ids": [snap.id for snap, _ in parsed]})
        rows = {row.id: row for row in locked}
        for snap, _ in parsed:
            if snap.id not in rows:  # deleted since phase 1
                mark_outbox_done(session, snap.id)
        present = [item for item in parsed if item[0].id in rows]
        if check_duplicates:  # every message's duplicate-check locks in one statement, in one order
            advisory_locks(session, [key for snap, one in present
                                     for key in duplicate_keys(snap, rows[snap.id].content_sha256, one)])
        seen_isa = seen_interchanges(session, ctx, [one for _, one in present]) if check_duplicates else None
        seen_content = seen_contents(session, list(rows.values())) if check_duplicates else None
        settles: list[dict[str, Any]] = []
        begun = [
            begin_write(session, ctx, snap, parsed_one, check_duplicates=check_duplicates,
                        send_acks=send_acks, locked=rows[snap.id], settles=settles, seen_isa=seen_isa,
                        seen_content=seen_content)
            for snap, parsed_one in present
        ]
        outcomes = complete_writes(session, begun)
        settle_messages(session, settles)
    return outcomes


def _arrival(snap: Snapshot) -> tuple[float, uuid.UUID]:
    """A message's place in the order of arrival."""
    return (snap.received_at.timestamp() if snap.received_at is not None else 0.0), snap.id
