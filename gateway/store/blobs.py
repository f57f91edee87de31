"""Catalogue rows for archived blobs: the database knows every hash and size."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef
from gateway.store.models import Blob


def record_blob(session: Session, ref: BlobRef) -> Blob:
    """The catalogue row for ``ref``, inserted if it is new (idempotent)."""
    row = session.get(Blob, ref.sha256)
    if row is None:
        row = Blob(sha256=ref.sha256, size=ref.size)
        session.add(row)
        session.flush()
    elif row.size != ref.size:
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
