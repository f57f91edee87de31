"""Async MDNs: post our MDN to the partner's Receipt-Delivery-Option URL, retrying with back-off.

The MDN is archived and its exchange row marked ``pending`` before the first POST, so a crash
loses nothing: ``retry_due_async_mdns`` (run it from beat) posts whatever is due again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.archive.blob_store import BlobStore
from gateway.http_pool import HttpError, HttpPool
from gateway.store.db import Database
from gateway.store.types import utcnow
from gateway.transports.as2.mime import parse_entity
from gateway.transports.as2.models import As2Exchange

MAX_ATTEMPTS = 10
BASE_DELAY_SECONDS = 30.0
MAX_DELAY_SECONDS = 3600.0


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off after ``attempts`` failed posts (30 s, 60 s, … capped at an hour)."""
    return timedelta(seconds=min(BASE_DELAY_SECONDS * 2 ** max(attempts - 1, 0), MAX_DELAY_SECONDS))


def post_mdn(client: HttpPool, url: str, raw_mdn: bytes) -> bool:
    """POST an archived MDN (headers + body); True on a 2xx answer."""
    entity = parse_entity(raw_mdn)
    headers = {k: v for k, v in entity.headers.items() if k != "content-length"}
    try:
        response = client.post(url, content=entity.body, headers=headers)
    except HttpError:
        return False
    return response.is_success


def deliver_async_mdn(db: Database, blobs: BlobStore, exchange_id: int, client: HttpPool) -> str:
    """Post one exchange's pending async MDN and record the outcome (sent, pending or failed)."""
    with db.unit_of_work(read_only=True) as session:
        exchange = session.get(As2Exchange, exchange_id)
        if (
            exchange is None
            or exchange.mdn_status != "pending"
            or not exchange.mdn_url
            or not exchange.mdn_sha256
        ):
            return "skipped"
        url, sha = exchange.mdn_url, exchange.mdn_sha256
    with blobs.open(sha) as handle:
        raw = handle.read()
    ok = post_mdn(client, url, raw)
    with db.unit_of_work() as session:
        exchange = session.get(As2Exchange, exchange_id)
        if exchange is None:
            return "skipped"
        exchange.mdn_attempts += 1
        if ok:
            exchange.mdn_status, exchange.mdn_next_attempt_at = "sent", None
        elif exchange.mdn_attempts >= MAX_ATTEMPTS:
            exchange.mdn_status, exchange.mdn_next_attempt_at = "failed", None
        else:
            exchange.mdn_next_attempt_at = utcnow() + retry_delay(exchange.mdn_attempts)
        return exchange.mdn_status or "pending"


def retry_due_async_mdns(db: Database, blobs: BlobStore, client: HttpPool, *, limit: int = 100) -> int:
    """Post every async MDN whose next attempt is due; how many were tried."""
    with db.unit_of_work(read_only=True) as session:
        due = list(
            session.scalars(
                select(As2Exchange.id)
                .where(
                    As2Exchange.mdn_status == "pending",
                    As2Exchange.mdn_next_attempt_at <= utcnow(),
                )
                .order_by(As2Exchange.mdn_next_attempt_at)
                .limit(limit)
            )
        )
    for exchange_id in due:
        deliver_async_mdn(db, blobs, exchange_id, client)
    return len(due)
