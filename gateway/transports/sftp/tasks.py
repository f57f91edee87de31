"""Scheduling of polls (beat → sweep → one task per due partner) as thin functions for Celery.

``sweep_polls`` finds partners whose ``transports.sftp.remote.poll_seconds`` have passed and
publishes one ``edigate.sftp_poll`` each; ``run_poll`` claims a lease on the partner's
``sftp_poll_state`` row (so two workers never poll one partner at once), polls, and records
the outcome. :func:`register_sftp_tasks` adds both tasks and the beat entry to a Celery app.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.processing.context import PipelineContext
from gateway.store.enums import PartnerStatus
from gateway.store.models import Partner, PartnerProfileVersion, SftpPollState
from gateway.store.types import utcnow
from gateway.transports import TransportError
from gateway.transports.sftp.config import SftpTuning
from gateway.transports.sftp.paths import MailboxLayout
from gateway.transports.sftp.poll import PollOutcome, poll_partner

log = logging.getLogger("edigate.sftp.tasks")

SFTP_POLL = "edigate.sftp_poll"
SFTP_POLL_SWEEP = "edigate.sftp_poll_sweep"
POLL_QUEUE = "inbound"


def _poll_seconds(profile: dict[str, Any]) -> int | None:
    remote = ((profile.get("transports") or {}).get("sftp") or {}).get("remote")
    if not isinstance(remote, dict):
        return None
    return int(remote.get("poll_seconds", 300))


def due_polls(session: Session, now: datetime) -> list[str]:
    """Partners with a remote SFTP server whose poll interval has passed and no poll running."""
    rows = session.execute(
        select(Partner.id, PartnerProfileVersion.profile)
        .join(PartnerProfileVersion, (PartnerProfileVersion.partner_id == Partner.id)
              & (PartnerProfileVersion.version == Partner.current_version))
        .where(Partner.deleted_at.is_(None), Partner.status != PartnerStatus.SUSPENDED)
    ).all()
    states = {s.partner_id: s for s in session.scalars(select(SftpPollState))}
    due: list[str] = []
    for partner_id, profile in rows:
        interval = _poll_seconds(profile)
        if interval is None:
            continue
        state = states.get(partner_id)
        if state is not None and state.leased_until is not None and state.leased_until > now:
            continue
        if state is not None and state.last_polled_at is not None and \
                state.last_polled_at + timedelta(seconds=interval) > now:
            continue
        due.append(partner_id)
    return due


def claim_poll(session: Session, partner_id: str, now: datetime, lease: timedelta) -> bool:
    """Take the partner's poll lease if it is due and free (row-locked); False otherwise."""
    if partner_id not in due_polls(session, now):
        return False
    state = session.execute(
        select(SftpPollState).where(SftpPollState.partner_id == partner_id)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if state is None:
        state = SftpPollState(partner_id=partner_id)
        session.add(state)
    elif state.leased_until is not None and state.leased_until > now:
        return False  # another worker claimed it while we looked
    state.leased_until = now + lease
    session.flush()
    return True


def release_poll(session: Session, partner_id: str, *, error: str | None) -> None:
    """Record a finished poll and free the lease."""
    state = session.get(SftpPollState, partner_id, with_for_update=True)
    if state is None:
        state = SftpPollState(partner_id=partner_id)
        session.add(state)
    state.last_polled_at = utcnow()
    state.leased_until = None
    state.last_error = error[:2000] if error else None


def sweep_polls(ctx: PipelineContext) -> int:
    """Publish one poll task per due partner (beat runs this every ``poll_sweep_seconds``)."""
    with ctx.db.unit_of_work(read_only=True) as session:
        due = due_polls(session, utcnow())
    published = 0
    for partner_id in due:
        if ctx.publisher is not None and ctx.publisher.publish(SFTP_POLL, {"partner_id": partner_id}):
            published += 1
    return published


def run_poll(ctx: PipelineContext, partner_id: str, tuning: SftpTuning | None = None) -> PollOutcome | None:
    """Poll one partner under its lease; None when it is not due or another poll holds the lease."""
    tuning = tuning or SftpTuning()
    try:
        with ctx.db.unit_of_work() as session:
            if not claim_poll(session, partner_id, utcnow(), timedelta(seconds=tuning.poll_lease_seconds)):
                return None
    except IntegrityError:  # a concurrent first claim inserted the row
        return None
    error: str | None = None
    outcome: PollOutcome | None = None
    try:
        outcome = poll_partner(
            ctx.db, ctx.blobs, ctx.box, partner_id, publisher=ctx.publisher, tuning=tuning,
            max_bytes=tuning.max_file_bytes or ctx.settings.max_body_bytes,
            key_dir=MailboxLayout.from_settings(ctx.settings).root / "keys",
        )
        error = "; ".join(outcome.errors) or None
    except TransportError as exc:
        error = str(exc)
        log.warning("poll of %s failed: %s", partner_id, exc)
    finally:
        with ctx.db.unit_of_work() as session:
            release_poll(session, partner_id, error=error)
    return outcome


def register_sftp_tasks(app: Any, context: Any, tuning: SftpTuning | None = None) -> None:
    """Add ``edigate.sftp_poll_sweep`` (beat) and ``edigate.sftp_poll`` to a Celery app.

    ``context`` is a zero-argument callable returning the process's ``PipelineContext``
    (e.g. ``lambda: resources.context`` in ``workers/app.py``).
    """
    tuning = tuning or SftpTuning()

    @app.task(name=SFTP_POLL_SWEEP)  # type: ignore[untyped-decorator]
    def sftp_poll_sweep_task() -> int:
        return sweep_polls(context())

    @app.task(name=SFTP_POLL)  # type: ignore[untyped-decorator]
    def sftp_poll_task(partner_id: str) -> int:
        outcome = run_poll(context(), partner_id, tuning)
        return len(outcome.received) if outcome is not None else 0

    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        "sftp-poll-sweep": {
            "task": SFTP_POLL_SWEEP,
            "schedule": tuning.poll_sweep_seconds,
            "options": {"queue": POLL_QUEUE, "expires": max(tuning.poll_sweep_seconds * 2, 1.0)},
        },
    }
