"""Receive one AS2 message: identify, de-duplicate, open, hand to intake, answer with an MDN.

Order (DESIGN §1, archive first): the view has already archived the raw request (headers
and body). Here the payload and the MDN are archived, then ONE transaction records the
message, its outbox row, the AS2 exchange (raw request + MDN blobs, disposition, MIC) and the
MDN on ``Message.receipt_sha256``; only after the commit is the MDN returned (sync) or posted
(async). A crash before the commit means the partner gets no MDN and resends: nothing was
processed, so nothing is processed twice. A resend with the same Message-ID of a *processed*
message gets the original MDN back and is not processed again; a resend of a *failed* one is
processed afresh (the partner may have fixed its certificate).
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef, BlobStore
from gateway.intake.service import publish_received, record_received, require_partner
from gateway.processing.publisher import Publisher
from gateway.secrets import SecretBox
from gateway.store.blobs import record_blob
from gateway.store.db import Database
from gateway.store.enums import Transport
from gateway.store.events import append_event
from gateway.store.models import Message
from gateway.store.types import utcnow
from gateway.transports.as2 import cms
from gateway.transports.as2.algorithms import SUPPORTED_DIGESTS, choose_mic_digest
from gateway.transports.as2.certificates import our_as2_ids, usable_key_pairs
from gateway.transports.as2.mdn import (
    DUPLICATE_WARNING,
    UNEXPECTED_ERROR,
    UNSUPPORTED_MIC,
    BuiltMdn,
    Disposition,
    build_mdn,
)
from gateway.transports.as2.mime import (
    MimeError,
    filename_of,
    parse_entity,
    sanitize_filename,
    unquote_as2_name,
)
from gateway.transports.as2.models import As2Exchange
from gateway.transports.as2.partners import As2Partner, find_partner_id_by_as2_id, load_as2_partner
from gateway.transports.as2.unwrap import UnwrapError, Unwrapped, top_entity, unwrap

UNKNOWN_PARTNER = "error: unknown-trading-partner"
KEYS_SECONDS = 5.0


@dataclass(frozen=True)
class MdnRequest:
    """What the sender asked for in its headers."""

    wanted: bool
    signed: bool
    signed_required: bool
    micalgs: tuple[str, ...]
    async_url: str | None

    @property
    def mode(self) -> str:
        """sync, async or none."""
        if not self.wanted:
            return "none"
        return "async" if self.async_url else "sync"


def parse_mdn_request(headers: dict[str, str]) -> MdnRequest:
    """Read Disposition-Notification-To/-Options and Receipt-Delivery-Option (lenient)."""
    wanted = bool(headers.get("disposition-notification-to"))
    options = headers.get("disposition-notification-options", "")
    signed = signed_required = False
    micalgs: tuple[str, ...] = ()
    for clause in options.split(";"):
        name, _, value = clause.partition("=")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if name.strip().lower() == "signed-receipt-protocol" and values:
            signed = (
                any(v.lower() == "pkcs7-signature" for v in values[1:])
                or values[-1].lower() == "pkcs7-signature"
            )
            signed_required = values[0].lower() == "required"
        elif name.strip().lower() == "signed-receipt-micalg" and values:
            micalgs = tuple(values[1:] if values[0].lower() in ("required", "optional") else values)
    url = (headers.get("receipt-delivery-option") or "").strip() or None
    if url is not None and not url.lower().startswith(("http://", "https://")):
        url = None
    return MdnRequest(wanted, signed, signed_required, micalgs, url)


@dataclass(frozen=True)
class As2Answer:
    """The HTTP answer for the sender, and an async MDN to post after it (if any)."""

    status_code: int
    headers: dict[str, str]
    body: bytes
    exchange_id: int | None = None
    message_id: uuid.UUID | None = None
    async_mdn: BuiltMdn | None = None
    async_url: str | None = None
    disposition: str | None = None


@dataclass
class ReceiveContext:
    """What receiving needs: database, archive, secret box, publisher and limits."""

    db: Database
    blobs: BlobStore
    box: SecretBox
    publisher: Publisher | None = None
    max_bytes: int | None = None
    _keys: tuple[float, list[cms.KeyPair], set[str]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def keys(self, session: Session) -> tuple[list[cms.KeyPair], set[str]]:
        """Our active key pairs and AS2 names, decrypted once every few seconds."""
        with self._lock:
            cached = self._keys
        if cached is not None and time.monotonic() - cached[0] < KEYS_SECONDS:
            return cached[1], cached[2]
        pairs, names = usable_key_pairs(session, self.box), our_as2_ids(session)
        with self._lock:
            self._keys = (time.monotonic(), pairs, names)
        return pairs, names

    def forget_keys(self) -> None:
        """Reload our keys on the next message (after a key change)."""
        with self._lock:
            self._keys = None


def _mdn_answer(mdn: BuiltMdn | None, request: MdnRequest) -> tuple[int, dict[str, str], bytes]:
    if mdn is None or request.mode != "sync":
        return 200, {"Content-Length": "0"}, b""
    return 200, dict(mdn.headers), mdn.body


def _choose_digest(request: MdnRequest, unwrapped: Unwrapped | None) -> tuple[str | None, bool]:
    """The MIC digest and whether the requested list had none we support."""
    if request.micalgs:
        digest = choose_mic_digest(request.micalgs)
        if digest is None:
            return None, True
        return digest, False
    if unwrapped is not None and unwrapped.signature_digest in SUPPORTED_DIGESTS:
        return unwrapped.signature_digest, False
    return "sha256", False


def _make_mdn(
    *,
    partner: As2Partner | None,
    our_id: str,
    partner_as2_id: str,
    message_id: str,
    request: MdnRequest,
    disposition: Disposition,
    mic: str | None,
    signer: cms.KeyPair | None,
    digest: str | None,
) -> BuiltMdn:
    sign_digest = digest if digest and digest != "sha1" else "sha256"
    legacy = partner.options.legacy_micalg if partner else False
    use_signer = signer if (request.signed and partner is not None and digest is not None) else None
    return build_mdn(
        our_as2_id=our_id,
        partner_as2_id=partner_as2_id,
        original_message_id=message_id,
        disposition=disposition,
        mic=mic,
        signer=use_signer,
        sign_digest=sign_digest,
        legacy_micalg=legacy,
    )


def _lock_message_id(session: Session, partner_id: str, message_id: str) -> None:
    """Serialise concurrent receipts of one Message-ID (SQLite's BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"as2:{partner_id}:{message_id}".encode()) - 2**31
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


@dataclass(frozen=True)
class _Previous:
    """The processed exchange a resend repeats (detached from its session)."""

    raw_sha256: str | None
    mdn_sha256: str | None
    mic: str | None
    disposition: str | None
    message_id: uuid.UUID | None


def _previous(session: Session, partner_id: str, message_id: str) -> _Previous | None:
    row = session.scalars(
        select(As2Exchange)
        .where(
            As2Exchange.partner_id == partner_id,
            As2Exchange.direction == "inbound",
            As2Exchange.as2_message_id == message_id,
            As2Exchange.status == "processed",
        )
        .order_by(As2Exchange.id)
    ).first()
    if row is None:
        return None
    return _Previous(row.raw_sha256, row.mdn_sha256, row.mic, row.disposition, row.message_id)


def _record_exchange(
    session: Session,
    *,
    partner_id: str | None,
    message_id: str,
    as2_from: str,
    as2_to: str,
    raw: BlobRef,
    mdn_blob: BlobRef | None,
    disposition: str | None,
    mic: str | None,
    status: str,
    request: MdnRequest,
    error: str | None = None,
    message: uuid.UUID | None = None,
) -> As2Exchange:
    record_blob(session, raw)
    if mdn_blob is not None:
        record_blob(session, mdn_blob)
    exchange = As2Exchange(
        direction="inbound",
        partner_id=partner_id,
        message_id=message,
        as2_message_id=message_id[:1000],
        as2_from=as2_from[:128],
        as2_to=as2_to[:128],
        raw_sha256=raw.sha256,
        mdn_sha256=mdn_blob.sha256 if mdn_blob else None,
        disposition=disposition,
        mic=mic,
        status=status,
        mdn_mode=request.mode,
        mdn_url=request.async_url,
        mdn_status="pending" if request.mode == "async" and mdn_blob else ("sent" if mdn_blob else None),
        mdn_attempts=0,
        mdn_next_attempt_at=utcnow() if request.mode == "async" else None,
        error=error,
    )
    session.add(exchange)
    session.flush()
    return exchange


def receive_as2(
    ctx: ReceiveContext,
    headers: dict[str, str],
    body: bytes,
    raw: BlobRef,
    *,
    correlation_id: str | None = None,
) -> As2Answer:
    """Process one AS2 POST whose raw request is archived as ``raw``; the answer to send back."""
    headers = {k.lower(): v for k, v in headers.items()}
    as2_from = unquote_as2_name(headers.get("as2-from"))
    as2_to = unquote_as2_name(headers.get("as2-to"))
    message_id = (headers.get("message-id") or "").strip()
    request = parse_mdn_request(headers)
    if not as2_from or not as2_to or not message_id:
        return As2Answer(
            400, {"Content-Type": "text/plain"}, b"AS2-From, AS2-To and Message-ID are required\n"
        )
    with ctx.db.unit_of_work(read_only=True) as session:
        partner_id = find_partner_id_by_as2_id(session, as2_from)
        partner = load_as2_partner(session, partner_id, ctx.box) if partner_id else None
        keys, names = ctx.keys(session)
        previous = _previous(session, partner.partner_id, message_id) if partner else None
    if partner is not None:
        names = names | {partner.profile.x12.our_id.id}
        if partner.options.our_as2_id:
            names.add(partner.options.our_as2_id)
    our_id = as2_to
    signer = keys[0] if keys else None
    # AS2-From can be spoofed: an async MDN goes to the partner's configured URL, or to the URL
    # the request names only once its signature has verified (below), never to an unvetted one.
    claimed_url = request.async_url
    configured_url = partner.as2.mdn.async_url if partner is not None else None
    request = replace(request, async_url=configured_url if claimed_url else None)
    if partner is None or as2_to not in names:
        return _fail(
            ctx,
            None,
            headers,
            raw,
            request,
            as2_from,
            as2_to,
            message_id,
            Disposition("processed", UNKNOWN_PARTNER),
            f"unknown AS2 relationship {as2_from!r} -> {as2_to!r}",
            None,
        )
    if previous is not None:
        return _duplicate(
            ctx, partner, previous, raw, request, as2_from, as2_to, message_id, signer, headers, body
        )
    # Every failure below answers this partner, for this request, with its own disposition.
    def fail(disposition: Disposition, error: str, signer: cms.KeyPair | None) -> As2Answer:
        return _fail(ctx, partner, headers, raw, request, as2_from, our_id, message_id,
                     disposition, error, signer)

    try:
        entity = top_entity(
            headers.get("content-type", ""),
            body,
            headers.get("content-transfer-encoding"),
            headers.get("content-disposition"),
        )
        unwrapped = unwrap(
            entity,
            keys=keys,
            verify_certs=partner.verify_certs,
            allow_expired=partner.options.allow_expired_certificates,
            max_bytes=ctx.max_bytes,
        )
    except UnwrapError as exc:
        return fail(
            Disposition("processed", exc.modifier),
            str(exc),
            signer,
        )
    except MimeError as exc:
        return fail(
            Disposition("processed", UNEXPECTED_ERROR),
            str(exc),
            signer,
        )
    if claimed_url and configured_url is None and "verified" in unwrapped.layers:
        request = replace(request, async_url=claimed_url)
    digest, unsupported = _choose_digest(request, unwrapped)
    if unsupported and request.signed_required:
        return fail(
            Disposition("failed", UNSUPPORTED_MIC),
            f"no supported MIC algorithm in {request.micalgs}",
            None,
        )
    mic = unwrapped.mic(digest, legacy=partner.options.legacy_micalg) if digest else None
    mdn = _make_mdn(
        partner=partner,
        our_id=our_id,
        partner_as2_id=as2_from,
        message_id=message_id,
        request=request,
        disposition=Disposition(),
        mic=mic,
        signer=signer,
        digest=digest,
    )
    payload = unwrapped.payload
    payload_blob = ctx.blobs.put_bytes(payload.decoded_body())
    mdn_blob = ctx.blobs.put_bytes(mdn.raw) if request.wanted else None
    filename = sanitize_filename(filename_of(payload), fallback=f"as2-{uuid.uuid4().hex[:12]}.edi")
    content_type = payload.headers.get("content-type", "application/edi-x12")
    with ctx.db.unit_of_work() as session:
        _lock_message_id(session, partner.partner_id, message_id)
        again = _previous(session, partner.partner_id, message_id)
        if again is None:
            require_partner(session, partner.partner_id)
            received = record_received(
                session,
                payload_blob,
                partner_id=partner.partner_id,
                transport=Transport.AS2,
                content_type=content_type[:200],
                filename=filename,
                transport_message_id=message_id[:500],
                correlation_id=correlation_id,
                actor=f"as2:{as2_from}"[:200],
            )
            stored = session.get(Message, received.message_id)
            if stored is not None and mdn_blob is not None:
                record_blob(session, mdn_blob)
                stored.receipt_sha256 = mdn_blob.sha256
            exchange = _record_exchange(
                session,
                partner_id=partner.partner_id,
                message_id=message_id,
                as2_from=as2_from,
                as2_to=as2_to,
                raw=raw,
                mdn_blob=mdn_blob,
                disposition=str(Disposition()),
                mic=mic,
                status="processed",
                request=request,
                message=received.message_id,
            )
            append_event(
                session,
                event_type="as2.received",
                actor=f"as2:{as2_from}"[:200],
                partner_id=partner.partner_id,
                message_id=received.message_id,
                subject_type="message",
                subject_id=received.message_id,
                correlation_id=received.correlation_id,
                data={
                    "as2_message_id": message_id,
                    "mic": mic,
                    "layers": unwrapped.layers,
                    "raw_sha256": raw.sha256,
                    "mdn_sha256": mdn_blob.sha256 if mdn_blob else None,
                    "mdn_mode": request.mode,
                },
            )
            exchange_id = exchange.id
    if again is not None:  # a concurrent copy won the race: answer like a duplicate
        return _duplicate(
            ctx, partner, again, raw, request, as2_from, as2_to, message_id, signer, headers, body
        )
    publish_received(ctx.db, ctx.publisher, received)
    status, out_headers, out_body = _mdn_answer(mdn, request)
    return As2Answer(
        status,
        out_headers,
        out_body,
        exchange_id,
        received.message_id,
        mdn if request.mode == "async" else None,
        request.async_url,
        str(Disposition()),
    )


def _fail(
    ctx: ReceiveContext,
    partner: As2Partner | None,
    headers: dict[str, str],
    raw: BlobRef,
    request: MdnRequest,
    as2_from: str,
    our_id: str,
    message_id: str,
    disposition: Disposition,
    error: str,
    signer: cms.KeyPair | None,
) -> As2Answer:
    """Record a message we could not accept and answer with the failure MDN (nothing processed)."""
    digest, _ = _choose_digest(request, None)
    mdn = _make_mdn(
        partner=partner,
        our_id=our_id,
        partner_as2_id=as2_from,
        message_id=message_id,
        request=request if partner is not None else _sync_only(request),
        disposition=disposition,
        mic=None,
        signer=signer,
        digest=digest,
    )
    mdn_blob = ctx.blobs.put_bytes(mdn.raw) if request.wanted else None
    with ctx.db.unit_of_work() as session:
        exchange = _record_exchange(
            session,
            partner_id=partner.partner_id if partner else None,
            message_id=message_id,
            as2_from=as2_from,
            as2_to=our_id,
            raw=raw,
            mdn_blob=mdn_blob,
            disposition=str(disposition),
            mic=None,
            status="failed",
            request=request if partner is not None else _sync_only(request),
            error=error[:2000],
        )
        append_event(
            session,
            event_type="as2.rejected",
            actor=f"as2:{as2_from}"[:200],
            partner_id=partner.partner_id if partner else None,
            subject_type="as2_exchange",
            subject_id=str(exchange.id),
            data={
                "as2_message_id": message_id,
                "disposition": str(disposition),
                "error": error[:500],
                "raw_sha256": raw.sha256,
            },
        )
        exchange_id = exchange.id
    # Unknown partners never get an async MDN: we do not post to URLs nobody vouched for.
    effective = request if partner is not None else _sync_only(request)
    status, out_headers, out_body = _mdn_answer(mdn if request.wanted else None, effective)
    return As2Answer(
        status,
        out_headers,
        out_body,
        exchange_id,
        None,
        mdn if effective.mode == "async" else None,
        effective.async_url,
        str(disposition),
    )


def _sync_only(request: MdnRequest) -> MdnRequest:
    return MdnRequest(request.wanted, False, False, request.micalgs, None)


def _duplicate(
    ctx: ReceiveContext,
    partner: As2Partner,
    previous: _Previous,
    raw: BlobRef,
    request: MdnRequest,
    as2_from: str,
    as2_to: str,
    message_id: str,
    signer: cms.KeyPair | None,
    headers: dict[str, str],
    body: bytes,
) -> As2Answer:
    """A resend of a processed message: the original MDN back (or a duplicate-document warning)."""
    same_bytes = previous.raw_sha256 is not None and _same_body(ctx, previous.raw_sha256, body)
    mdn: BuiltMdn | None = None
    if previous.mdn_sha256 and same_bytes and partner.options.duplicate_mdn == "original":
        with ctx.blobs.open(previous.mdn_sha256) as handle:
            stored = handle.read()
        original = parse_entity(stored)
        mdn = BuiltMdn(
            {_title(k): v for k, v in original.headers.items()},
            original.body,
            original.headers.get("message-id", ""),
        )
        mdn.headers["Content-Length"] = str(len(mdn.body))
        mdn_blob: BlobRef | None = None
        disposition = previous.disposition or "processed"
    else:
        digest, _ = _choose_digest(request, None)
        mdn = _make_mdn(
            partner=partner,
            our_id=as2_to,
            partner_as2_id=as2_from,
            message_id=message_id,
            request=request,
            disposition=Disposition("processed", DUPLICATE_WARNING),
            mic=previous.mic if same_bytes else None,
            signer=signer,
            digest=digest,
        )
        mdn_blob = ctx.blobs.put_bytes(mdn.raw) if request.wanted else None
        disposition = str(Disposition("processed", DUPLICATE_WARNING))
    with ctx.db.unit_of_work() as session:
        exchange = _record_exchange(
            session,
            partner_id=partner.partner_id,
            message_id=message_id,
            as2_from=as2_from,
            as2_to=as2_to,
            raw=raw,
            mdn_blob=mdn_blob,
            disposition=disposition,
            mic=previous.mic,
            status="duplicate",
            request=request,
            message=previous.message_id,
        )
        if mdn_blob is None and previous.mdn_sha256:
            exchange.mdn_sha256 = previous.mdn_sha256
        append_event(
            session,
            event_type="as2.duplicate",
            actor=f"as2:{as2_from}"[:200],
            partner_id=partner.partner_id,
            message_id=previous.message_id,
            subject_type="as2_exchange",
            subject_id=str(exchange.id),
            data={"as2_message_id": message_id, "same_bytes": same_bytes, "raw_sha256": raw.sha256},
        )
        exchange_id = exchange.id
    status, out_headers, out_body = _mdn_answer(mdn if request.wanted else None, request)
    return As2Answer(
        status,
        out_headers,
        out_body,
        exchange_id,
        previous.message_id,
        mdn if request.mode == "async" else None,
        request.async_url,
        disposition,
    )


def _title(name: str) -> str:
    special = {
        "as2-from": "AS2-From",
        "as2-to": "AS2-To",
        "as2-version": "AS2-Version",
        "message-id": "Message-ID",
        "mime-version": "MIME-Version",
    }
    return special.get(name, "-".join(part.capitalize() for part in name.split("-")))


def _same_body(ctx: ReceiveContext, raw_sha256: str, body: bytes) -> bool:
    """Whether a stored raw request ends with exactly this body."""
    with ctx.blobs.open(raw_sha256) as handle:
        stored = handle.read()
    return stored.endswith(b"\r\n\r\n" + body) or stored == body


def split_stored_request(stored: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of a raw request archived by the AS2 view."""
    entity = parse_entity(stored)
    return entity.headers, entity.body


def raw_request_bytes(headers: Sequence[tuple[str, str]], body_prefix: bytes = b"") -> bytes:
    """The header block the view archives in front of the body."""
    lines = b"".join(f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in headers)
    return lines + b"\r\n" + body_prefix
