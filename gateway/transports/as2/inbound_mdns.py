"""Async MDNs for what we sent: match by Original-Message-ID, verify, record on the message."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from gateway.archive.blob_store import BlobRef
from gateway.secrets import SecretBox
from gateway.store.blobs import record_blob
from gateway.store.db import Database
from gateway.store.events import append_event
from gateway.store.models import Message
from gateway.transports.as2.algorithms import normalize_digest, same_mic
from gateway.transports.as2.mdn import MdnError, parse_mdn
from gateway.transports.as2.mime import unquote_as2_name
from gateway.transports.as2.models import As2Exchange
from gateway.transports.as2.partners import find_partner_id_by_as2_id, load_as2_partner


@dataclass(frozen=True)
class MdnOutcome:
    """What an inbound async MDN did: HTTP status and a short reason."""

    status_code: int
    outcome: str


def receive_async_mdn(
    db: Database, box: SecretBox, headers: dict[str, str], body: bytes, raw: BlobRef
) -> MdnOutcome:
    """Verify an async MDN from a partner and attach it to the outbound exchange it answers."""
    headers = {k.lower(): v for k, v in headers.items()}
    as2_from = unquote_as2_name(headers.get("as2-from"))
    with db.unit_of_work(read_only=True) as session:
        partner_id = find_partner_id_by_as2_id(session, as2_from) if as2_from else None
        partner = load_as2_partner(session, partner_id, box) if partner_id else None
    if partner is None:
        return MdnOutcome(403, "unknown partner")
    try:
        mdn = parse_mdn(
            headers.get("content-type", ""),
            body,
            partner_certs=partner.verify_certs,
            content_transfer_encoding=headers.get("content-transfer-encoding"),
            allow_expired=partner.options.allow_expired_certificates,
        )
    except MdnError as exc:
        return MdnOutcome(400, f"unusable MDN: {exc}")
    if partner.as2.mdn.signed and partner.options.require_signed_mdn and not mdn.signed:
        return MdnOutcome(400, "unsigned MDN where a signed one was requested")
    original = (mdn.original_message_id or "").strip()
    with db.unit_of_work() as session:
        exchange = session.scalars(
            select(As2Exchange)
            .where(
                As2Exchange.partner_id == partner.partner_id,
                As2Exchange.direction == "outbound",
                As2Exchange.as2_message_id == original,
            )
            .order_by(As2Exchange.id.desc())
        ).first()
        if exchange is None:
            return MdnOutcome(404, f"no message {original} was sent to this partner")
        record_blob(session, raw)
        exchange.mdn_sha256 = raw.sha256
        exchange.mdn_status = "received"
        exchange.disposition = str(mdn.disposition)
        mic_ok = (
            mdn.mic is None
            or exchange.mic is None
            or (
                normalize_digest(mdn.mic.partition(",")[2])
                != normalize_digest(exchange.mic.partition(",")[2])
            )
            or same_mic(mdn.mic, exchange.mic)
        )
        if mdn.disposition.ok and mic_ok:
            exchange.status = "delivered"
        else:
            exchange.status = "mdn_failed"
            exchange.error = "MIC mismatch" if not mic_ok else f"partner answered {mdn.disposition}"
        message = session.get(Message, exchange.message_id) if exchange.message_id else None
        if message is not None:
            message.receipt_sha256 = raw.sha256
            if exchange.status == "mdn_failed":
                message.error = exchange.error
        append_event(
            session,
            event_type="as2.mdn_received",
            actor=f"as2:{as2_from}"[:200],
            partner_id=partner.partner_id,
            message_id=exchange.message_id,
            subject_type="as2_exchange",
            subject_id=str(exchange.id),
            data={
                "as2_message_id": original,
                "signed": mdn.signed,
                "disposition": str(mdn.disposition),
                "mic": mdn.mic,
                "status": exchange.status,
            },
        )
    return MdnOutcome(200, exchange.status)
