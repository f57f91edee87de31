"""Outbound transports: one small interface that HTTP (now), AS2 and SFTP (later) implement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from partner_profiles.schema import PartnerProfile


class TransportError(Exception):
    """A send failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code


class NotConfigured(TransportError):
    """The partner's profile has no endpoint for this transport."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class OutboundMessage:
    """What a transport needs to know about the message it sends."""

    message_id: str
    partner_id: str
    content_type: str
    filename: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What the far side answered: status, an id it gave us, and the raw receipt to archive."""

    status_code: int | None
    remote_id: str | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """Sends one message's bytes to a partner and returns the receipt."""

    def send(self, message: OutboundMessage, payload: bytes, profile: PartnerProfile) -> Receipt:
        """Deliver ``payload``; raise ``TransportError`` when it did not arrive."""
        ...
