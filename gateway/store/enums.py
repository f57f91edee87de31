"""The closed vocabularies stored in the database (as plain strings)."""

from __future__ import annotations

import enum


class Direction(enum.StrEnum):
    """Which way a message travels, seen from us."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Transport(enum.StrEnum):
    """How a message arrived or leaves."""

    AS2 = "as2"
    SFTP = "sftp"
    HTTP = "http"
    API = "api"
    REPLAY = "replay"


class PartnerStatus(enum.StrEnum):
    """A partner's lifecycle; ISA15 T/P must match test/active."""

    TEST = "test"
    ACTIVE = "active"
    SUSPENDED = "suspended"


class ApiKeyRole(enum.StrEnum):
    """What an API key may do."""

    ADMIN = "admin"
    ONBOARDING = "onboarding"
    ERP = "erp"
    AUDITOR = "auditor"
    PARTNER = "partner"


class MessageStatus(enum.StrEnum):
    """Where a message is in its flow."""

    RECEIVED = "received"
    PROCESSING = "processing"
    PROCESSED = "processed"
    REJECTED = "rejected"
    FAILED = "failed"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"


class EnvelopeStatus(enum.StrEnum):
    """The outcome for an interchange, group or transaction set."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    ACCEPTED_WITH_ERRORS = "accepted_with_errors"
    PARTIALLY_ACCEPTED = "partially_accepted"
    REJECTED = "rejected"


class AckStatus(enum.StrEnum):
    """The state of an acknowledgment we expect from a partner."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    ACCEPTED_WITH_ERRORS = "accepted_with_errors"
    PARTIALLY_ACCEPTED = "partially_accepted"
    REJECTED = "rejected"
    OVERDUE = "overdue"


class DocumentStatus(enum.StrEnum):
    """A canonical document's state."""

    RECEIVED = "received"
    DELIVERED = "delivered"
    PENDING = "pending"
    GENERATED = "generated"
    SENT = "sent"
    FAILED = "failed"


class DeliveryStatus(enum.StrEnum):
    """A webhook delivery's state."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboxStatus(enum.StrEnum):
    """A transactional-outbox row's state."""

    PENDING = "pending"
    ENQUEUED = "enqueued"
    DONE = "done"
    FAILED = "failed"


class ControlNumberKind(enum.StrEnum):
    """The outbound control numbers allocated per partner."""

    ISA13 = "isa13"
    GS06 = "gs06"
    ST02 = "st02"
