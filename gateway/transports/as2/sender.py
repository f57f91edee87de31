"""``As2Transport``: the outbound worker's AS2 sender (registry name ``as2``).

Builds the message per the partner's profile, POSTs it with a Message-ID derived from our
message id (the same on every retry), verifies a sync MDN (signature with the partner's
configured certificates, Original-Message-ID, disposition, MIC) and records the exchange.
Retries follow rfc4130bis: 408, 425, 429, 5xx and network errors are retryable; other 4xx and a
signed failure MDN are not. Async MDNs arrive at ``POST /as2/mdn`` (see ``inbound_mdns``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.events import append_event
from gateway.transports import NotConfigured, OutboundMessage, Receipt, TransportError
from gateway.transports.as2.algorithms import normalize_digest, same_mic
from gateway.transports.as2.building import BuildOptions, BuiltMessage, build_message, message_id_for
from gateway.transports.as2.certificates import usable_key_pairs
from gateway.transports.as2.mdn import MdnError, ParsedMdn, parse_mdn
from gateway.transports.as2.mime import render_headers
from gateway.transports.as2.models import As2Exchange
from gateway.transports.as2.partners import As2Partner, as2_partner_from_profile
from partner_profiles.schema import PartnerProfile

RETRYABLE_STATUS = frozenset({408, 425, 429})
CHUNK = 64 * 1024


def build_options(partner: As2Partner) -> BuildOptions:
    """The profile's algorithms and the partner's interop options as build options."""
    as2, options = partner.as2, partner.options
    sign = None if as2.sign == "none" else as2.sign
    return BuildOptions(
        sign=sign,
        encrypt=None if as2.encrypt == "none" else as2.encrypt,
        compress=as2.compress,
        compress_after_sign=options.compress_after_sign,
        pss=options.pss,
        oaep=options.oaep,
        signed_attributes=not options.sign_without_attributes,
        legacy_micalg=options.legacy_micalg,
        base64_transfer=options.content_transfer_encoding == "base64",
        quote_filename=options.quote_filename,
        mdn_mode=as2.mdn.mode,
        mdn_signed=as2.mdn.signed,
        mdn_url=as2.mdn.async_url,
        mdn_digests=(sign or "sha256",),
    )


def check_mdn(mdn: ParsedMdn, built: BuiltMessage, *, signed_requested: bool, require_signed: bool) -> None:
    """Raise ``TransportError`` unless the MDN confirms this message was processed intact."""
    if signed_requested and require_signed and not mdn.signed:
        raise TransportError("the MDN is not signed although a signed MDN was requested", retryable=True)
    if mdn.original_message_id and mdn.original_message_id.strip() != built.message_id:
        raise TransportError(
            f"the MDN answers {mdn.original_message_id}, not {built.message_id}", retryable=True
        )
    if not mdn.disposition.ok:
        raise TransportError(f"the partner answered {mdn.disposition}", retryable=False)
    if (
        mdn.mic is not None
        and normalize_digest(mdn.mic.partition(",")[2]) == built.mic_digest
        and not same_mic(mdn.mic, built.mic)
    ):
        raise TransportError(f"MIC mismatch: sent {built.mic}, MDN says {mdn.mic}", retryable=False)


class As2Transport:
    """A ``Transport`` over AS2 with one pooled HTTP client per process."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        settings: Settings | None = None,
        database: Database | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self._timeout = timeout
        self._settings = settings
        self._database = database
        self._client = client
        self._box: SecretBox | None = None

    def _resources(self) -> tuple[Database, SecretBox, httpx.Client]:
        if self._settings is None:
            self._settings = Settings()
        if self._database is None:
            self._database = Database.from_settings(self._settings)
        if self._box is None:
            self._box = SecretBox.from_settings(self._settings)
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
        return self._database, self._box, self._client

    def send(self, message: OutboundMessage, payload: bytes, profile: PartnerProfile) -> Receipt:
        """Build, POST and (sync) verify the MDN; ``TransportError`` when not delivered."""
        as2 = profile.transports.as2
        if as2 is None or not as2.url:
            raise NotConfigured(f"partner {profile.id} has no transports.as2.url")
        db, box, client = self._resources()
        with db.unit_of_work(read_only=True) as session:
            partner = as2_partner_from_profile(session, profile, as2)
            keys = usable_key_pairs(session, box)
        options = build_options(partner)
        signer = keys[0] if keys else None
        our_id = partner.options.our_as2_id or (signer.as2_id if signer else "") or profile.x12.our_id.id
        try:
            built = build_message(
                payload,
                content_type=message.content_type,
                filename=message.filename,
                as2_from=our_id,
                as2_to=as2.as2_id,
                message_id=message_id_for(message.message_id, our_id),
                options=options,
                signer=signer,
                recipients=partner.encrypt_certs,
            )
        except ValueError as exc:
            raise TransportError(f"cannot build the AS2 message: {exc}", retryable=False) from exc
        content: bytes | Iterator[bytes] = built.body
        if partner.options.chunked:
            content = iter([built.body[i : i + CHUNK] for i in range(0, len(built.body), CHUNK)])
        try:
            response = client.post(as2.url, content=content, headers=built.headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {as2.url} failed: {exc}") from exc
        if not response.is_success:
            code = response.status_code
            raise TransportError(
                f"POST {as2.url} answered {code}",
                retryable=code >= 500 or code in RETRYABLE_STATUS,
                status_code=code,
            )
        raw_mdn = b""
        status = "sent"
        disposition: str | None = None
        if options.mdn_mode == "sync":
            raw_mdn = render_headers(list(response.headers.items())) + response.content
            try:
                mdn = parse_mdn(
                    response.headers.get("content-type", ""),
                    response.content,
                    partner_certs=partner.verify_certs,
                    content_transfer_encoding=response.headers.get("content-transfer-encoding"),
                    allow_expired=partner.options.allow_expired_certificates,
                )
            except MdnError as exc:
                self._record(db, message, built, partner, our_id, "mdn_failed", None, str(exc))
                raise TransportError(f"unusable MDN: {exc}", retryable=True) from exc
            disposition = str(mdn.disposition)
            try:
                check_mdn(
                    mdn,
                    built,
                    signed_requested=options.mdn_signed,
                    require_signed=partner.options.require_signed_mdn,
                )
            except TransportError as exc:
                self._record(db, message, built, partner, our_id, "mdn_failed", disposition, str(exc))
                raise
            status = "delivered"
        self._record(db, message, built, partner, our_id, status, disposition, None)
        return Receipt(
            status_code=response.status_code,
            remote_id=built.message_id,
            body=raw_mdn,
            headers={
                "content-type": response.headers.get("content-type", ""),
                "as2-disposition": disposition or "",
            },
        )

    def _record(
        self,
        db: Database,
        message: OutboundMessage,
        built: BuiltMessage,
        partner: As2Partner,
        our_id: str,
        status: str,
        disposition: str | None,
        error: str | None,
    ) -> None:
        import uuid

        with db.unit_of_work() as session:
            exchange = As2Exchange(
                direction="outbound",
                partner_id=partner.partner_id,
                message_id=uuid.UUID(message.message_id),
                as2_message_id=built.message_id,
                as2_from=our_id[:128],
                as2_to=partner.as2.as2_id[:128],
                disposition=disposition,
                mic=built.mic,
                status=status,
                mdn_mode=partner.as2.mdn.mode,
                mdn_status="pending"
                if partner.as2.mdn.mode == "async" and status == "sent"
                else ("received" if disposition else None),
                mdn_attempts=0,
                error=error[:2000] if error else None,
            )
            session.add(exchange)
            session.flush()
            data: dict[str, Any] = {
                "as2_message_id": built.message_id,
                "status": status,
                "mic": built.mic,
                "disposition": disposition,
                "error": error,
            }
            append_event(
                session,
                event_type="as2.sent",
                actor="worker",
                partner_id=partner.partner_id,
                message_id=uuid.UUID(message.message_id),
                subject_type="as2_exchange",
                subject_id=str(exchange.id),
                correlation_id=message.correlation_id,
                data=data,
            )

    def close(self) -> None:
        """Close the pooled connections."""
        if self._client is not None:
            self._client.close()
