"""Catalogue rows for archived blobs: the database knows every hash and size."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef
from gateway.store.models import Blob
from gateway.store.types import utcnow


def record_blob(session: Session, ref: BlobRef) -> Blob:
    """The catalogue row for ``ref``, inserted if it is new (idempotent, also under concurrency)."""
    row = session.get(Blob, ref.sha256)
    if row is None:
        # Two transactions may archive identical bytes at once: let the database settle it.
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(Blob).values(sha256=ref.sha256, size=ref.size, created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=[Blob.sha256]))
        row = session.get(Blob, ref.sha256, populate_existing=True)
        assert row is not None
    if row.size != ref.size:
        raise ValueError(f"blob {ref.sha256} is catalogued with size {row.size}, not {ref.size}")
    return row


def iter_blob_refs(session: Session, *, batch_size: int = 1000) -> Iterator[BlobRef]:
    """Every catalogued blob, in hash order, read in keyset batches."""
    last = ""
    while True:
        rows = session.execute(
            select(Blob.sha256, Blob.size).where(Blob.sha256 > last).order_by(Blob.sha256).limit(batch_size)
        ).all()
        if not rows:
            return
        for sha256, size in rows:
            yield BlobRef(sha256=sha256, size=size)
        last = rows[-1][0]
