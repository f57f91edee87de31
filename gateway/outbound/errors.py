"""What can go wrong when the ERP sends a document: each error names the fields at fault."""

from __future__ import annotations


class OutboundError(Exception):
    """Base of the outbound errors."""


class UnknownPartner(OutboundError):
    """No live partner has this id."""


class PartnerSuspended(OutboundError):
    """The partner is suspended: nothing is sent to it."""


class DocumentInvalid(OutboundError):
    """The document failed the JSON Schema, the partner's rules or its X12 map."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


class IdempotencyConflict(OutboundError):
    """The Idempotency-Key was used before with a different document."""


class IdempotencyRace(OutboundError):
    """Another request with the same Idempotency-Key committed first; retry to read its answer."""
