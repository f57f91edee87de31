"""``POST /as2`` and ``POST /as2/mdn`` at the root (AS2 partners do not use /api/v1 or API keys).

Authentication is AS2's own: the partner's signature checked against its configured
certificates. The raw request (headers, then the body, chunked or after an ``Expect:
100-continue``) is archived before anything else; the size limit applies while it streams
(413, nothing kept). A body up to ``IN_MEMORY_BODY`` is archived in one write once complete; a
larger one streams to the archive as it arrives and receiving reads it back from there. The
CPU and database work runs in worker threads, at most ``RECEIVE_THREADS`` messages at a time per
process (the others wait their turn).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.archive.blob_store import BlobRef, BlobStore, BlobTooLarge, BlobWriter
from gateway.http_pool import HttpPool
from gateway.logging import current_correlation_id
from gateway.processing.publisher import CeleryPublisher, Publisher
from gateway.secrets import SecretBox
from gateway.transports.as2.context import ReceiveContext
from gateway.transports.as2.inbound_mdns import MdnOutcome, receive_async_mdn
from gateway.transports.as2.mdn_delivery import deliver_async_mdn
from gateway.transports.as2.receiving import As2Answer, raw_request_bytes, receive_as2
from gateway.transports.as2.spans import Span

router = APIRouter(tags=["as2"])
WRITE_BATCH_BYTES = 256 * 1024
IN_MEMORY_BODY = 1024 * 1024  # larger AS2 bodies are read back from the archive, never held
MAX_MDN_BYTES = 10 * 1024 * 1024
ASYNC_MDN_TIMEOUT = 30.0
# Receiving is mostly Python holding the GIL between short waits (database, fsync). Two
# threads still overlap one's waits with the other's work; more only contend for the GIL:
# with eight messages at a time in one process, 840 futex calls per message against 130 with
# two, and ~0.7 ms more CPU per message. More cores want more API processes, not threads.
RECEIVE_THREADS = 2


def _publisher(request: Request) -> Publisher:
    publisher: Publisher | None = getattr(request.app.state, "publisher", None)
    if publisher is None:
        publisher = CeleryPublisher(request.app.state.settings)
        request.app.state.publisher = publisher
    return publisher


def _receive_limiter(request: Request) -> anyio.CapacityLimiter:
    """The app's limit on messages being received at once (made on first use)."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "as2_receive_limiter", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(RECEIVE_THREADS)
        request.app.state.as2_receive_limiter = limiter
    return limiter


def receive_context(request: Request) -> ReceiveContext:
    """The app's AS2 receive context (keys cached per process), made on first use."""
    ctx: ReceiveContext | None = getattr(request.app.state, "as2_context", None)
    if ctx is None:
        settings = request.app.state.settings
        box = getattr(request.app.state, "secret_box", None) or SecretBox.from_settings(settings)
        ctx = ReceiveContext(
            request.app.state.db, request.app.state.blobs, box, _publisher(request), settings.max_body_bytes
        )
        request.app.state.as2_context = ctx
    return ctx


@dataclass
class _Archiving:
    """A request being archived: its header block, and the body if small or the writer it streams to."""

    head: bytes
    body: bytes | None
    writer: BlobWriter | None

    def commit(self, blobs: BlobStore) -> BlobRef:
        """Make the raw request durable: a small one in one write, a streamed one by its writer."""
        if self.writer is None:
            return blobs.put_bytes(self.head + (self.body or b""))
        try:
            return self.writer.commit()
        except BaseException:
            self.writer.abort()
            raise


async def _archive_request(request: Request, max_bytes: int, keep_bytes: int) -> _Archiving | Response:
    """Read the raw request (headers + body), holding at most ``keep_bytes`` of body in memory.

    A larger body streams into an archive writer as it arrives and is read back from the
    archived request, never held.
    """
    head = raw_request_bytes(list(request.headers.items()))
    writer: BlobWriter | None = None
    pending: list[bytes] = []
    size = pending_size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLarge(f"the body exceeds {max_bytes} bytes")
            pending.append(chunk)
            pending_size += len(chunk)
            if writer is None and size > keep_bytes:
                writer = request.app.state.blobs.writer(max_bytes=max_bytes + 64 * 1024)
                writer.write(head)
            if writer is not None and pending_size >= WRITE_BATCH_BYTES:
                writer.write(b"".join(pending))
                pending, pending_size = [], 0
        if writer is not None and pending:
            writer.write(b"".join(pending))
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if isinstance(exc, BlobTooLarge):
            return Response(f"the body exceeds {max_bytes} bytes\n", status_code=413, media_type="text/plain")
        raise
    if size == 0:  # no writer: one starts only past keep_bytes
        return Response("the body is empty\n", status_code=400, media_type="text/plain")
    return _Archiving(head, b"".join(pending) if writer is None else None, writer)


def _mdn_pool(request: Request) -> HttpPool:
    """The app's keep-alive connections for posting async MDNs (made on first use)."""
    pool: HttpPool | None = getattr(request.app.state, "as2_mdn_pool", None)
    if pool is None:
        pool = request.app.state.as2_mdn_pool = HttpPool(timeout=ASYNC_MDN_TIMEOUT)
    return pool


def _post_async_mdn(request: Request, exchange_id: int) -> None:
    db, blobs, pool = request.app.state.db, request.app.state.blobs, _mdn_pool(request)

    def run() -> None:
        deliver_async_mdn(db, blobs, exchange_id, pool)

    threading.Thread(target=run, name=f"as2-async-mdn-{exchange_id}", daemon=True).start()


@router.post("/as2", include_in_schema=False)
async def receive(request: Request) -> Response:
    """Receive one AS2 message and answer with its MDN (sync), or 200 and post it (async)."""
    max_bytes = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return Response(f"the body exceeds {max_bytes} bytes\n", status_code=413, media_type="text/plain")
    archived = await _archive_request(request, max_bytes, IN_MEMORY_BODY)
    if isinstance(archived, Response):
        return archived
    ctx = receive_context(request)
    headers, correlation_id = dict(request.headers), current_correlation_id()

    def run() -> As2Answer:
        # One trip to the thread pool: make the raw request durable, then receive it.
        raw = archived.commit(ctx.blobs)
        if archived.body is not None:
            return receive_as2(ctx, headers, archived.body, raw, correlation_id=correlation_id, publish=False)
        with ctx.blobs.open(raw.sha256) as stored:  # a large body is read back, not held
            body = Span.of_file(stored, len(archived.head), raw.size)
            return receive_as2(ctx, headers, body, raw, correlation_id=correlation_id, publish=False)

    answer = await anyio.to_thread.run_sync(run, limiter=_receive_limiter(request))
    if answer.async_mdn is not None and answer.exchange_id is not None:
        _post_async_mdn(request, answer.exchange_id)
    if answer.received is not None:  # committed: publish its task off the request path
        ctx.ring(answer.received)
    return Response(answer.body, status_code=answer.status_code, headers=answer.headers)


@router.post("/as2/mdn", include_in_schema=False)
async def receive_mdn(request: Request) -> Response:
    """An async MDN for a message we sent: verified, matched and recorded."""
    archived = await _archive_request(request, MAX_MDN_BYTES, MAX_MDN_BYTES)
    if isinstance(archived, Response):
        return archived
    box = receive_context(request).box
    headers = dict(request.headers)

    def run() -> MdnOutcome:
        raw = archived.commit(request.app.state.blobs)
        return receive_async_mdn(request.app.state.db, box, headers, archived.body or b"", raw)

    outcome = await run_in_threadpool(run)
    return Response(f"{outcome.outcome}\n", status_code=outcome.status_code, media_type="text/plain")
