"""Catalogue rows for archived blobs: the database knows every hash and size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef
from gateway.store.core import run
from gateway.store.models import Blob
from gateway.store.statements import multi_row_insert, row_params
from gateway.store.types import utcnow

_COLUMNS = ("sha256", "size", "created_at")


def record_blob(session: Session, ref: BlobRef) -> None:
    """Catalogue ``ref`` if it is new (idempotent, also when two transactions archive it at once)."""
    record_blobs(session, [ref])


def record_blobs(session: Session, refs: Sequence[BlobRef]) -> None:
    """Catalogue every new blob of ``refs`` in one statement; a known hash must have its size."""
    unique = {ref.sha256: ref for ref in refs}
    if not unique:
        return
    now = utcnow()
    rows = [(ref.sha256, ref.size, now) for ref in unique.values()]
    statement = multi_row_insert(Blob.__table__, _COLUMNS, len(rows), "ON CONFLICT (sha256) DO NOTHING")
    result = run(session, statement, row_params(_COLUMNS, rows))
    if getattr(result, "rowcount", len(unique)) == len(unique):
        return
    # Some were known already: their catalogued sizes must agree with what was just archived.
    for sha256, size in session.execute(select(Blob.sha256, Blob.size).where(Blob.sha256.in_(unique))):
        if size != unique[sha256].size:
            raise ValueError(f"blob {sha256} is catalogued with size {size}, not {unique[sha256].size}")


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
