"""``POST /as2`` and ``POST /as2/mdn`` at the root (AS2 partners do not use /api/v1 or API keys).

Authentication is AS2's own: the partner's signature checked against its configured
certificates. The raw request (headers, then the body as it streams in, chunked or after an
``Expect: 100-continue``) is archived before anything else; the size limit applies while it
streams (413, nothing kept). The CPU and database work runs in the thread pool.
"""

from __future__ import annotations

import threading

import httpx
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from gateway.archive.blob_store import BlobRef, BlobTooLarge
from gateway.logging import current_correlation_id
from gateway.processing.publisher import CeleryPublisher, Publisher
from gateway.secrets import SecretBox
from gateway.transports.as2.inbound_mdns import receive_async_mdn
from gateway.transports.as2.mdn_delivery import deliver_async_mdn
from gateway.transports.as2.receiving import ReceiveContext, raw_request_bytes, receive_as2

router = APIRouter(tags=["as2"])
WRITE_BATCH_BYTES = 256 * 1024
ASYNC_MDN_TIMEOUT = 30.0


def _publisher(request: Request) -> Publisher:
    publisher: Publisher | None = getattr(request.app.state, "publisher", None)
    if publisher is None:
        publisher = CeleryPublisher(request.app.state.settings)
        request.app.state.publisher = publisher
    return publisher


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


async def _archive_request(request: Request, max_bytes: int) -> tuple[BlobRef, bytes] | Response:
    """Archive the raw request (headers + body) while reading the body; the body too."""
    writer = request.app.state.blobs.writer(max_bytes=max_bytes + 64 * 1024)
    writer.write(raw_request_bytes(list(request.headers.items())))
    chunks: list[bytes] = []
    pending: list[bytes] = []
    size = pending_size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLarge(f"the body exceeds {max_bytes} bytes")
            chunks.append(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= WRITE_BATCH_BYTES:
                writer.write(b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            writer.write(b"".join(pending))
    except BlobTooLarge:
        writer.abort()
        return Response(f"the body exceeds {max_bytes} bytes\n", status_code=413, media_type="text/plain")
    except BaseException:
        writer.abort()
        raise
    if size == 0:
        writer.abort()
        return Response("the body is empty\n", status_code=400, media_type="text/plain")
    blob: BlobRef = await run_in_threadpool(writer.commit)
    return blob, b"".join(chunks)


def _post_async_mdn(request: Request, exchange_id: int) -> None:
    db, blobs = request.app.state.db, request.app.state.blobs

    def run() -> None:
        with httpx.Client(timeout=ASYNC_MDN_TIMEOUT) as client:
            deliver_async_mdn(db, blobs, exchange_id, client)

    threading.Thread(target=run, name=f"as2-async-mdn-{exchange_id}", daemon=True).start()


@router.post("/as2", include_in_schema=False)
async def receive(request: Request) -> Response:
    """Receive one AS2 message and answer with its MDN (sync), or 200 and post it (async)."""
    max_bytes = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return Response(f"the body exceeds {max_bytes} bytes\n", status_code=413, media_type="text/plain")
    archived = await _archive_request(request, max_bytes)
    if isinstance(archived, Response):
        return archived
    raw, body = archived
    ctx = receive_context(request)
    answer = await run_in_threadpool(
        receive_as2, ctx, dict(request.headers), body, raw, correlation_id=current_correlation_id()
    )
    if answer.async_mdn is not None and answer.exchange_id is not None:
        _post_async_mdn(request, answer.exchange_id)
    return Response(answer.body, status_code=answer.status_code, headers=answer.headers)


@router.post("/as2/mdn", include_in_schema=False)
async def receive_mdn(request: Request) -> Response:
    """An async MDN for a message we sent: verified, matched and recorded."""
    archived = await _archive_request(request, 10 * 1024 * 1024)
    if isinstance(archived, Response):
        return archived
    raw, body = archived
    box = receive_context(request).box
    outcome = await run_in_threadpool(
        receive_async_mdn, request.app.state.db, box, dict(request.headers), body, raw
    )
    return Response(f"{outcome.outcome}\n", status_code=outcome.status_code, media_type="text/plain")
