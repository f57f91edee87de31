"""Intake: archive the bytes, record the message and its outbox row, then enqueue processing."""

from gateway.intake.service import (
    IntakeError,
    PartnerSuspended,
    Received,
    UnknownPartner,
    publish_received,
    receive,
    receive_archived,
    record_received,
    require_partner,
)

__all__ = [
    "IntakeError",
    "PartnerSuspended",
    "Received",
    "UnknownPartner",
    "publish_received",
    "receive",
    "receive_archived",
    "record_received",
    "require_partner",
]
