"""Eight workers generating for one partner at once on PostgreSQL: no duplicate, no skipped control
number; a crash after allocating returns its numbers with the rolled-back work."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.outbound.service import submit_document
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.enums import Direction
from gateway.store.models import FunctionalGroup, Interchange, TransactionSet
from gateway.store.types import utcnow
from partner_profiles.service import save_profile, validate_profile_data
from tests.conftest_outbound import outbound_profile, sample_document

pytestmark = pytest.mark.integration
WORKERS, EACH = 8, 8
POLICY = RetryPolicy(window=timedelta(hours=1))


def _submit(db: Database, blobs: BlobStore, n: int) -> None:
    with db.unit_of_work() as session:
        submit_document(
            session,
            blobs=blobs,
            box=None,
            partner_id="acme-retail",
            document_type="invoice",
            data=sample_document("invoice") | {"invoice_number": f"INV-{n}"},
            idempotency_key=None,
            actor="test",
            correlation_id=f"c{n}",
            lease=timedelta(minutes=5),
            policy=POLICY,
        )


def _numbers(db: Database) -> tuple[list[int], list[int], list[int]]:
    with db.unit_of_work(read_only=True) as session:
        isa = [
            int(n)
            for n in session.scalars(
                select(Interchange.control_number).where(Interchange.direction == Direction.OUTBOUND)
            )
        ]
        gs = [int(n) for n in session.scalars(select(FunctionalGroup.control_number))]
        st = [int(n) for n in session.scalars(select(TransactionSet.control_number))]
    return sorted(isa), sorted(gs), sorted(st)


def test_eight_concurrent_workers_never_duplicate_or_skip_a_control_number(
    pg_database: Database, blob_store: BlobStore, tmp_path: object
) -> None:
    with pg_database.unit_of_work() as session:
        save_profile(
            session,
            validate_profile_data(outbound_profile()),
            box=SecretBox(SecretStr("k" * 40)),
            actor="test",
        )
    barrier = threading.Barrier(WORKERS)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            for k in range(EACH):
                _submit(pg_database, blob_store, index * EACH + k)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    started = utcnow()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    expected = list(range(1, WORKERS * EACH + 1))
    assert _numbers(pg_database) == (expected, expected, expected)
    assert utcnow() - started < timedelta(seconds=60)


def test_a_crash_after_allocating_rolls_the_numbers_back_with_the_work(
    pg_database: Database, blob_store: BlobStore
) -> None:
    with pg_database.unit_of_work() as session:
        save_profile(
            session,
            validate_profile_data(outbound_profile()),
            box=SecretBox(SecretStr("k" * 40)),
            actor="test",
        )
    _submit(pg_database, blob_store, 1)
    with pytest.raises(RuntimeError), pg_database.unit_of_work() as session:
        submit_document(
            session,
            blobs=blob_store,
            box=None,
            partner_id="acme-retail",
            document_type="invoice",
            data=sample_document("invoice"),
            idempotency_key=None,
            actor="test",
            correlation_id="x",
            lease=timedelta(minutes=5),
            policy=POLICY,
        )
        raise RuntimeError("the worker died before commit")
    _submit(pg_database, blob_store, 2)
    assert _numbers(pg_database) == ([1, 2], [1, 2], [1, 2])
