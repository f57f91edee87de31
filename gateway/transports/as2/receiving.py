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

import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef
from gateway.intake.service import Received, publish_received, record_received
from gateway.store.blobs import record_blobs
from gateway.store.core import run, table_of
from gateway.store.enums import Transport
from gateway.store.events import append_event
from gateway.store.types import utcnow
from gateway.transports.as2 import cms
from gateway.transports.as2.algorithms import SUPPORTED_DIGESTS, choose_mic_digest
from gateway.transports.as2.context import ReceiveContext, SenderSetup
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
from gateway.transports.as2.partners import As2Partner
from gateway.transports.as2.spans import Span
from gateway.transports.as2.unwrap import UnwrapError, Unwrapped, top_entity, unwrap

UNKNOWN_PARTNER = "error: unknown-trading-partner"


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
    received: Received | None = None


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
    partner: As2Partner | None,
    inbound: _Inbound,
    *,
    disposition: Disposition,
    mic: str | None,
    signer: cms.KeyPair | None,
    digest: str | None,
) -> BuiltMdn:
    sign_digest = digest if digest and digest != "sha1" else "sha256"
    legacy = partner.options.legacy_micalg if partner else False
    use_signer = signer if (inbound.request.signed and partner is not None and digest is not None) else None
    return build_mdn(
        our_as2_id=inbound.as2_to,
        partner_as2_id=inbound.as2_from,
        original_message_id=inbound.message_id,
        disposition=disposition,
        mic=mic,
        signer=use_signer,
        sign_digest=sign_digest,
        legacy_micalg=legacy,
    )


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def _message_lock(partner_id: str, message_id: str) -> int:
    """The advisory lock that serialises concurrent receipts of one Message-ID on PostgreSQL."""
    return zlib.crc32(f"as2:{partner_id}:{message_id}".encode()) - 2**31


def _lock_message_id(session: Session, lock: int) -> None:
    """Take the Message-ID's lock (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        run(session, _ADVISORY_LOCK, {"k": lock})


@dataclass(frozen=True)
class _Previous:
    """The processed exchange a resend repeats (detached from its session)."""

    raw_sha256: str | None
    mdn_sha256: str | None
    mic: str | None
    disposition: str | None
    message_id: uuid.UUID | None


# Per-message statements: built once on the tables, run with gateway.store.core.run.
_EXCHANGES = table_of(As2Exchange)
_PREVIOUS = (
    select(
        _EXCHANGES.c.raw_sha256,
        _EXCHANGES.c.mdn_sha256,
        _EXCHANGES.c.mic,
        _EXCHANGES.c.disposition,
        _EXCHANGES.c.message_id,
    )
    .where(
        _EXCHANGES.c.partner_id == bindparam("partner_id"),
        _EXCHANGES.c.direction == "inbound",
        _EXCHANGES.c.as2_message_id == bindparam("message_id"),
        _EXCHANGES.c.status == "processed",
    )
    .order_by(_EXCHANGES.c.id)
    .limit(1)
)
_INSERT_EXCHANGE = insert(_EXCHANGES).returning(_EXCHANGES.c.id)


def _previous(session: Session, partner_id: str, message_id: str) -> _Previous | None:
    row = run(session, _PREVIOUS, {"partner_id": partner_id, "message_id": message_id}).first()
    if row is None:
        return None
    return _Previous(row.raw_sha256, row.mdn_sha256, row.mic, row.disposition, row.message_id)


def _record_exchange(
    session: Session,
    partner_id: str | None,
    inbound: _Inbound,
    *,
    mdn_blob: BlobRef | None,
    disposition: str | None,
    mic: str | None,
    status: str,
    error: str | None = None,
    message: uuid.UUID | None = None,
    mdn_sha256: str | None = None,
    catalogued: bool = False,
) -> int:
    """Catalogue the raw request and MDN blobs (unless intake did) and insert the exchange row."""
    request = inbound.request
    if not catalogued:
        record_blobs(session, [inbound.raw] if mdn_blob is None else [inbound.raw, mdn_blob])
    values = {
        "direction": "inbound",
        "partner_id": partner_id,
        "message_id": message,
        "as2_message_id": inbound.message_id[:1000],
        "as2_from": inbound.as2_from[:128],
        "as2_to": inbound.as2_to[:128],
        "raw_sha256": inbound.raw.sha256,
        "mdn_sha256": mdn_blob.sha256 if mdn_blob else mdn_sha256,
        "disposition": disposition,
        "mic": mic,
        "status": status,
        "mdn_mode": request.mode,
        "mdn_url": request.async_url,
        "mdn_status": "pending" if request.mode == "async" and mdn_blob else ("sent" if mdn_blob else None),
        "mdn_attempts": 0,
        "mdn_next_attempt_at": utcnow() if request.mode == "async" else None,
        "error": error,
    }
    exchange_id: int = run(session, _INSERT_EXCHANGE, values).scalar_one()
    return exchange_id


@dataclass(frozen=True)
class _Inbound:
    """One AS2 POST as receiving sees it: headers (lower-cased), body, archived request, MDN wishes."""

    headers: dict[str, str]
    body: Span
    raw: BlobRef
    request: MdnRequest
    as2_from: str
    as2_to: str
    message_id: str

    @property
    def actor(self) -> str:
        """Who the events name."""
        return f"as2:{self.as2_from}"[:200]


def receive_as2(
    ctx: ReceiveContext,
    headers: dict[str, str],
    body: bytes | Span,
    raw: BlobRef,
    *,
    correlation_id: str | None = None,
    publish: bool = True,
) -> As2Answer:
    """Process one AS2 POST whose raw request is archived as ``raw``; the answer to send back.

    ``body`` may be a span on the archived request, for bodies too large to hold in memory.
    With ``publish=False`` the caller rings intake's doorbell for ``answer.received`` itself
    (``ctx.ring``), e.g. after the response is out: the outbox row is committed.
    """
    headers = {k.lower(): v for k, v in headers.items()}
    inbound = _Inbound(
        headers,
        body if isinstance(body, Span) else Span.of(body),
        raw,
        parse_mdn_request(headers),
        unquote_as2_name(headers.get("as2-from")),
        unquote_as2_name(headers.get("as2-to")),
        (headers.get("message-id") or "").strip(),
    )
    if not inbound.as2_from or not inbound.as2_to or not inbound.message_id:
        return As2Answer(
            400, {"Content-Type": "text/plain"}, b"AS2-From, AS2-To and Message-ID are required\n"
        )
    # A known sender's setup is taken from the cache and confirmed in the write transaction (or
    # before a failure is answered), so a message costs no read transaction of its own.
    setup = ctx.cached_setup(inbound.as2_from)
    if setup is not None:
        try:
            return _receive(ctx, inbound, setup, False, correlation_id, publish)
        except _Stale:
            pass
    with ctx.db.unit_of_work(read_only=True) as session:
        setup = ctx.load_setup(session, inbound.as2_from)
    return _receive(ctx, inbound, setup, True, correlation_id, publish)


class _Stale(Exception):
    """The cached setup a message was being received with has changed: receive it again."""


def _confirm(ctx: ReceiveContext, check: SenderSetup | None) -> None:
    """Before a failure is answered, confirm a cached setup (``check``): a stale one may be the cause."""
    if check is not None:
        with ctx.db.unit_of_work(read_only=True) as session:
            if not ctx.is_current(session, check):
                raise _Stale


def _receive(
    ctx: ReceiveContext,
    inbound: _Inbound,
    setup: SenderSetup,
    confirmed: bool,
    correlation_id: str | None,
    publish: bool,
) -> As2Answer:
    """Receive with this setup (``confirmed``: freshly read; else it is checked before any answer)."""
    partner, keys, names = setup.partner, setup.keys, set(setup.names)
    check = None if confirmed else setup
    headers = inbound.headers
    if partner is not None:
        names.add(partner.profile.x12.our_id.id)
        if partner.options.our_as2_id:
            names.add(partner.options.our_as2_id)
    signer = keys[0] if keys else None
    # AS2-From can be spoofed: an async MDN goes to the partner's configured URL, or to the URL
    # the request names only once its signature has verified (below), never to an unvetted one.
    claimed_url = inbound.request.async_url
    configured_url = partner.as2.mdn.async_url if partner is not None else None
    vetted = replace(inbound.request, async_url=configured_url if claimed_url else None)
    inbound = replace(inbound, request=vetted)
    if partner is None or inbound.as2_to not in names:
        _confirm(ctx, check)
        return _fail(
            ctx,
            None,
            inbound,
            Disposition("processed", UNKNOWN_PARTNER),
            f"unknown AS2 relationship {inbound.as2_from!r} -> {inbound.as2_to!r}",
            None,
        )
    # Resends are recognised under the Message-ID's lock in ``_accept`` (one read fewer per
    # message); a resend that no longer opens is recognised in ``_refuse``.
    try:
        entity = top_entity(
            headers.get("content-type", ""),
            inbound.body,
            headers.get("content-transfer-encoding"),
            headers.get("content-disposition"),
        )
        unwrapped = unwrap(
            entity,
            keys=keys,
            verify_certs=partner.verify_certs,
            allow_expired=partner.options.allow_expired_certificates,
            max_bytes=ctx.max_bytes,
            spool_dir=ctx.blobs.tmp_dir,
        )
    except UnwrapError as exc:
        _confirm(ctx, check)
        return _refuse(ctx, partner, inbound, Disposition("processed", exc.modifier), str(exc), signer)
    except MimeError as exc:
        _confirm(ctx, check)
        return _refuse(ctx, partner, inbound, Disposition("processed", UNEXPECTED_ERROR), str(exc), signer)
    try:
        if claimed_url and configured_url is None and "verified" in unwrapped.layers:
            inbound = replace(inbound, request=replace(inbound.request, async_url=claimed_url))
        return _accept(ctx, partner, inbound, unwrapped, signer, check, correlation_id, publish)
    finally:
        unwrapped.close()


def _accept(
    ctx: ReceiveContext,
    partner: As2Partner,
    inbound: _Inbound,
    unwrapped: Unwrapped,
    signer: cms.KeyPair | None,
    check: SenderSetup | None,
    correlation_id: str | None,
    publish: bool,
) -> As2Answer:
    """Archive the opened payload and its MDN, record both in one transaction, then answer.

    ``check``: a cached setup to confirm under the Message-ID's lock (``_Stale`` if it changed).
    """
    request, message_id = inbound.request, inbound.message_id
    digest, unsupported = _choose_digest(request, unwrapped)
    if unsupported and request.signed_required:
        _confirm(ctx, check)
        return _refuse(
            ctx,
            partner,
            inbound,
            Disposition("failed", UNSUPPORTED_MIC),
            f"no supported MIC algorithm in {request.micalgs}",
            signer,  # signs a resend's answer; a failure MDN without a supported MIC is unsigned
        )
    mic = unwrapped.mic(digest, legacy=partner.options.legacy_micalg) if digest else None
    mdn = _make_mdn(partner, inbound, disposition=Disposition(), mic=mic, signer=signer, digest=digest)
    payload = unwrapped.payload
    with ctx.blobs.batch() as batch:  # one sync for both
        payload_blob = batch.put_stream(unwrapped.payload_content().chunks())
        mdn_blob = batch.put_bytes(mdn.raw) if request.wanted else None
    filename = sanitize_filename(filename_of(payload), fallback=f"as2-{uuid.uuid4().hex[:12]}.edi")
    content_type = payload.headers.get("content-type", "application/edi-x12")
    with ctx.db.unit_of_work() as session:
        lock = _message_lock(partner.partner_id, message_id)
        if check is None:
            _lock_message_id(session, lock)
        elif not ctx.is_current(session, check, lock=lock):  # takes the lock in the same statement
            raise _Stale
        again = _previous(session, partner.partner_id, message_id)
        if again is None:
            received = record_received(
                session,
                payload_blob,
                partner_id=partner.partner_id,
                transport=Transport.AS2,
                content_type=content_type[:200],
                filename=filename,
                transport_message_id=message_id[:500],
                correlation_id=correlation_id,
                actor=inbound.actor,
                lease=ctx.lease,
                receipt=mdn_blob,
                also_archived=[inbound.raw],
            )
            exchange_id = _record_exchange(
                session,
                partner.partner_id,
                inbound,
                mdn_blob=mdn_blob,
                disposition=str(Disposition()),
                mic=mic,
                status="processed",
                message=received.message_id,
                catalogued=True,
            )
            append_event(
                session,
                event_type="as2.received",
                actor=inbound.actor,
                partner_id=partner.partner_id,
                message_id=received.message_id,
                subject_type="message",
                subject_id=received.message_id,
                correlation_id=received.correlation_id,
                data={
                    "as2_message_id": message_id,
                    "mic": mic,
                    "layers": unwrapped.layers,
                    "raw_sha256": inbound.raw.sha256,
                    "mdn_sha256": mdn_blob.sha256 if mdn_blob else None,
                    "mdn_mode": request.mode,
                },
            )
    if again is not None:  # a concurrent copy won the race: answer like a duplicate
        return _duplicate(ctx, partner, again, inbound, signer)
    if publish:
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
        received,
    )


def _refuse(
    ctx: ReceiveContext,
    partner: As2Partner,
    inbound: _Inbound,
    disposition: Disposition,
    error: str,
    signer: cms.KeyPair | None,
) -> As2Answer:
    """Answer a resend of a processed message as a duplicate, anything else with a failure MDN."""
    with ctx.db.unit_of_work(read_only=True) as session:
        previous = _previous(session, partner.partner_id, inbound.message_id)
    if previous is not None:
        return _duplicate(ctx, partner, previous, inbound, signer)
    return _fail(ctx, partner, inbound, disposition, error, signer)


def _fail(
    ctx: ReceiveContext,
    partner: As2Partner | None,
    inbound: _Inbound,
    disposition: Disposition,
    error: str,
    signer: cms.KeyPair | None,
) -> As2Answer:
    """Record a message we could not accept and answer with the failure MDN (nothing processed)."""
    # Unknown partners never get an async MDN: we do not post to URLs nobody vouched for.
    request = inbound.request if partner is not None else _sync_only(inbound.request)
    inbound = replace(inbound, request=request)
    digest, _ = _choose_digest(request, None)
    mdn = _make_mdn(partner, inbound, disposition=disposition, mic=None, signer=signer, digest=digest)
    mdn_blob = ctx.blobs.put_bytes(mdn.raw) if request.wanted else None
    with ctx.db.unit_of_work() as session:
        exchange_id = _record_exchange(
            session,
            partner.partner_id if partner else None,
            inbound,
            mdn_blob=mdn_blob,
            disposition=str(disposition),
            mic=None,
            status="failed",
            error=error[:2000],
        )
        append_event(
            session,
            event_type="as2.rejected",
            actor=inbound.actor,
            partner_id=partner.partner_id if partner else None,
            subject_type="as2_exchange",
            subject_id=str(exchange_id),
            data={
                "as2_message_id": inbound.message_id,
                "disposition": str(disposition),
                "error": error[:500],
                "raw_sha256": inbound.raw.sha256,
            },
        )
    status, out_headers, out_body = _mdn_answer(mdn if request.wanted else None, request)
    return As2Answer(
        status,
        out_headers,
        out_body,
        exchange_id,
        None,
        mdn if request.mode == "async" else None,
        request.async_url,
        str(disposition),
    )


def _sync_only(request: MdnRequest) -> MdnRequest:
    return MdnRequest(request.wanted, False, False, request.micalgs, None)


def _duplicate(
    ctx: ReceiveContext,
    partner: As2Partner,
    previous: _Previous,
    inbound: _Inbound,
    signer: cms.KeyPair | None,
) -> As2Answer:
    """A resend of a processed message: the original MDN back (or a duplicate-document warning)."""
    request = inbound.request
    same_bytes = previous.raw_sha256 is not None and _same_body(ctx, previous.raw_sha256, inbound.body)
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
            partner,
            inbound,
            disposition=Disposition("processed", DUPLICATE_WARNING),
            mic=previous.mic if same_bytes else None,
            signer=signer,
            digest=digest,
        )
        mdn_blob = ctx.blobs.put_bytes(mdn.raw) if request.wanted else None
        disposition = str(Disposition("processed", DUPLICATE_WARNING))
    with ctx.db.unit_of_work() as session:
        exchange_id = _record_exchange(
            session,
            partner.partner_id,
            inbound,
            mdn_blob=mdn_blob,
            disposition=disposition,
            mic=previous.mic,
            status="duplicate",
            message=previous.message_id,
            mdn_sha256=None if mdn_blob is not None else previous.mdn_sha256,
        )
        append_event(
            session,
            event_type="as2.duplicate",
            actor=inbound.actor,
            partner_id=partner.partner_id,
            message_id=previous.message_id,
            subject_type="as2_exchange",
            subject_id=str(exchange_id),
            data={
                "as2_message_id": inbound.message_id,
                "same_bytes": same_bytes,
                "raw_sha256": inbound.raw.sha256,
            },
        )
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


def _same_body(ctx: ReceiveContext, raw_sha256: str, body: Span) -> bool:
    """Whether a stored raw request ends with exactly this body (compared a chunk at a time)."""
    with ctx.blobs.open(raw_sha256) as handle:
        stored = Span.of_file(handle)
        if len(stored) == len(body) and stored.same_bytes(body):
            return True
        tail = len(stored) - len(body)
        return tail >= 4 and stored.read(tail - 4, tail) == b"\r\n\r\n" and stored.sub(tail).same_bytes(body)


def split_stored_request(stored: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of a raw request archived by the AS2 view."""
    entity = parse_entity(stored)
    return entity.headers, entity.body


def raw_request_bytes(headers: Sequence[tuple[str, str]], body_prefix: bytes = b"") -> bytes:
    """The header block the view archives in front of the body."""
    lines = b"".join(f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in headers)
    return lines + b"\r\n" + body_prefix
