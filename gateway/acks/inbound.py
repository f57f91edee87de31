"""The hook inbound processing calls: reconcile the 997/999/TA1s of the interchanges it wrote."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from gateway.store.models import Message
from translators.acks import FunctionalAck

if TYPE_CHECKING:
    from gateway.processing.context import PipelineContext
    from gateway.processing.x12_parse import ParsedInterchange


def reconcile_parsed(
    session: Session,
    ctx: PipelineContext,
    message: Message,
    interchanges: Sequence[ParsedInterchange],
    *,
    now: datetime,
) -> list[uuid.UUID]:
    """Reconcile the acknowledgments of freshly written (not duplicate) interchanges; delivery ids."""
    from gateway.acks.reconcile import InboundAcks, reconcile_inbound  # processing imports this module

    found = [
        InboundAcks(
            [s.model for s in item.sets if isinstance(s.model, FunctionalAck)],  # never builds a model
            [t for t in item.result.ta1 if "error" not in t],
        )
        for item in interchanges
    ]
    if message.partner_id is None or not any(a.functional or a.ta1 for a in found):
        return []
    outcome = reconcile_inbound(
        session,
        partner_id=message.partner_id,
        message=message,
        interchanges=found,
        policy=ctx.retry_policy(),
        now=now,
    )
    return outcome.delivery_ids
