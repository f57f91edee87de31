"""HTTP transport: POST the payload to the partner's ``transports.http.outbound_url``."""

from __future__ import annotations

from gateway.http_pool import HttpError, HttpPool
from gateway.transports import NotConfigured, OutboundMessage, Receipt, TransportError
from partner_profiles.schema import PartnerProfile

RECEIPT_LIMIT = 64 * 1024


class HttpTransport:
    """A ``Transport`` over HTTP(S) with one pool of keep-alive connections per process."""

    def __init__(self, *, timeout: float = 30.0, pool: HttpPool | None = None) -> None:
        self._pool = pool or HttpPool(timeout=timeout)

    def send(self, message: OutboundMessage, payload: bytes, profile: PartnerProfile) -> Receipt:
        """POST the bytes; 2xx is a receipt, anything else a ``TransportError``."""
        http = profile.transports.http
        if http is None or not http.outbound_url:
            raise NotConfigured(f"partner {profile.id} has no transports.http.outbound_url")
        headers = {name: value.get_secret_value() for name, value in http.headers.items()}
        headers.update(
            {
                "content-type": message.content_type,
                "x-edigate-message-id": message.message_id,
            }
        )
        if message.filename:
            headers["content-disposition"] = f'attachment; filename="{message.filename}"'
        try:
            response = self._pool.post(http.outbound_url, content=payload, headers=headers)
        except HttpError as exc:
            raise TransportError(f"POST {http.outbound_url} failed: {exc}") from exc
        if not response.is_success:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            raise TransportError(
                f"POST {http.outbound_url} answered {response.status_code}",
                retryable=retryable,
                status_code=response.status_code,
            )
        return Receipt(
            status_code=response.status_code,
            remote_id=response.headers.get("x-message-id"),
            body=response.content[:RECEIPT_LIMIT],
            headers={"content-type": response.headers.get("content-type", "")},
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()
