"""Archive fixtures: a factory of realistic messages (blob, X12 tree, document, references,
deliveries, events) written straight through the ORM, and a real uvicorn server per backend
(``tests.conftest_api.serve_in_thread``).

The server and its database are module-scoped (one per backend and test module) to keep the
suite fast; tests isolate themselves with a partner of their own (``factory.new_partner()``).
Load with ``pytest_plugins = [..., "tests.conftest_archive"]`` in tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api import app as app_module
from gateway.api.app import create_app
from gateway.archive.blob_store import BlobStore
from gateway.messages.views import router as archive_router
from gateway.settings import Settings
from gateway.store.blobs import record_blob
from gateway.store.db import Database
from gateway.store.enums import (
    AckStatus,
    ApiKeyRole,
    DeliveryStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    PartnerStatus,
    Transport,
)
from gateway.store.events import append_event
from gateway.store.migrate import upgrade_to_head
from gateway.store.models import (
    Delivery,
    DeliveryAttempt,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    Partner,
    PartnerProfileVersion,
    TransactionSet,
    WebhookEndpoint,
)
from gateway.store.types import utcnow
from tests.conftest_api import ApiKeys, serve_in_thread, stop_server
from tests.conftest_store import create_pg_schema, drop_pg_schema

DOCUMENT_SETS = {"purchase_order": ("850", "PO"), "invoice": ("810", "IN"), "ship_notice": ("856", "SH")}


def x12_purchase_order(
    *, isa13: str, gs06: str, st02: str, po_number: str, sender: str = "ACMERETAIL"
) -> bytes:
    """A small, well-formed 850 interchange."""
    segments = [
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*DISTCO         "
        f"*261122*0930*U*00401*{isa13}*1*T*>",
        f"GS*PO*{sender}*DISTCO*20261122*0930*{gs06}*X*004010",
        f"ST*850*{st02}",
        f"BEG*00*SA*{po_number}**20261122",
        "PO1*1*12*CA*24.50**UP*012345678905*VP*WID-1",
        "CTT*1*12",
        f"SE*5*{st02}",
        f"GE*1*{gs06}",
        f"IEA*1*{isa13}",
    ]
    return ("~\n".join(segments) + "~\n").encode("ascii")


@dataclass(frozen=True)
class SeededMessage:
    """The ids of one message tree made by the factory."""

    message_id: uuid.UUID
    interchange_id: uuid.UUID
    group_id: uuid.UUID
    transaction_id: uuid.UUID
    document_id: uuid.UUID
    partner_id: str
    correlation_id: str
    content: bytes
    sha256: str


@dataclass
class ArchiveFactory:
    """Writes messages the way the intake and inbound worker leave them."""

    database: Database
    blobs: BlobStore
    _counter: int = field(default=0)

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def new_partner(self, prefix: str = "p") -> str:
        """A fresh partner (with profile version 1) that no other test uses."""
        partner_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        with self.database.unit_of_work() as session:
            session.add(Partner(id=partner_id, name=partner_id.upper(), status=PartnerStatus.ACTIVE,
                                current_version=1))
            session.flush()
            session.add(PartnerProfileVersion(partner_id=partner_id, version=1,
                                              profile={"id": partner_id}, profile_sha256="ab" * 32))
        return partner_id

    def api_key(self, role: ApiKeyRole, *, partner_id: str | None = None) -> str:
        """A new plaintext API key with that role."""
        return ApiKeys(self.database).create(role, name=f"{role.value}-{uuid.uuid4().hex[:6]}",
                                             partner_id=partner_id)

    def message(
        self,
        partner_id: str,
        *,
        direction: Direction = Direction.INBOUND,
        document_type: str = "purchase_order",
        po_number: str | None = None,
        received_at: datetime | None = None,
        status: MessageStatus = MessageStatus.PROCESSED,
        ack_status: AckStatus | None = None,
        transport: Transport = Transport.AS2,
        error: str | None = None,
        transaction_errors: list[dict[str, Any]] | None = None,
        data: dict[str, Any] | None = None,
    ) -> SeededMessage:
        """One message with one interchange/group/transaction, its document and its events."""
        n = self._next()
        isa13, gs06, st02 = f"{n:09d}", str(n), f"{n:04d}"
        po_number = po_number or f"PO-{uuid.uuid4().hex[:8].upper()}"
        content = x12_purchase_order(isa13=isa13, gs06=gs06, st02=st02, po_number=po_number)
        ref = self.blobs.put_bytes(content)
        set_id, functional_id = DOCUMENT_SETS[document_type]
        correlation_id = uuid.uuid4().hex
        envelope_status = EnvelopeStatus.REJECTED if transaction_errors else EnvelopeStatus.ACCEPTED
        common = {"partner_id": partner_id, "correlation_id": correlation_id}
        with self.database.unit_of_work() as session:
            record_blob(session, ref)
            message = Message(
                direction=direction, transport=transport, status=status, content_sha256=ref.sha256,
                size=ref.size, content_type="application/edi-x12", filename=f"po-{n}.x12",
                transport_message_id=f"<{uuid.uuid4().hex}@as2>", received_at=received_at or utcnow(),
                ack_status=ack_status, error=error, **common,
            )
            session.add(message)
            session.flush()
            interchange = Interchange(
                message_id=message.id, direction=direction, sender_qualifier="ZZ",
                sender_id="ACMERETAIL     ", receiver_qualifier="ZZ", receiver_id="DISTCO         ",
                control_number=isa13, version="00401", usage_indicator="T", ack_requested=True,
                interchange_date="261122", status=envelope_status, **common,
            )
            session.add(interchange)
            session.flush()
            group = FunctionalGroup(
                interchange_id=interchange.id, functional_id=functional_id, application_sender="ACMERETAIL",
                application_receiver="DISTCO", control_number=gs06, version="004010X",
                status=envelope_status, ack_status=ack_status, **common,
            )
            session.add(group)
            session.flush()
            transaction = TransactionSet(
                group_id=group.id, set_id=set_id, control_number=st02, status=envelope_status,
                errors=transaction_errors or [], **common,
            )
            session.add(transaction)
            session.flush()
            document = Document(
                transaction_id=transaction.id, message_id=message.id, direction=direction,
                document_type=document_type, profile_version=1, business_reference=po_number,
                status=DocumentStatus.RECEIVED,
                data=data or {"po_number": po_number, "po_date": "2026-11-22", "currency": "USD",
                              "lines": [{"line_number": "1", "quantity": "12", "uom": "CA",
                                         "item": {"vendor_part": "WID-1", "description": "Blue widget"}}]},
                **common,
            )
            session.add(document)
            session.flush()
            session.add(DocumentReference(document_id=document.id, qualifier="po_number", value=po_number))
            append_event(session, event_type="message.received", message_id=message.id,
                         subject_type="message", subject_id=message.id, data={"size": ref.size}, **common)
            append_event(session, event_type="document.created", message_id=message.id,
                         subject_type="document", subject_id=document.id,
                         data={"document_type": document_type}, **common)
            return SeededMessage(message.id, interchange.id, group.id, transaction.id, document.id,
                                 partner_id, correlation_id, content, ref.sha256)

    def delivery(
        self, seeded: SeededMessage, *, status: DeliveryStatus = DeliveryStatus.DELIVERED
    ) -> uuid.UUID:
        """A webhook delivery of the seeded document, one attempt, and its event."""
        with self.database.unit_of_work() as session:
            endpoint = WebhookEndpoint(name=f"erp-{uuid.uuid4().hex[:8]}", url="https://erp.example/hook",
                                       events=["document.received"], secret_ciphertext="ciphertext-not-shown")
            session.add(endpoint)
            session.flush()
            now = utcnow()
            delivery = Delivery(
                webhook_id=f"msg_{uuid.uuid4().hex}", endpoint_id=endpoint.id,
                event_type="document.received",
                partner_id=seeded.partner_id, document_id=seeded.document_id, message_id=seeded.message_id,
                payload={"type": "document.received"}, status=status, attempt_count=1,
                give_up_at=now + timedelta(hours=24), delivered_at=now, correlation_id=seeded.correlation_id,
            )
            session.add(delivery)
            session.flush()
            session.add(DeliveryAttempt(delivery_id=delivery.id, status_code=200, duration_ms=12))
            append_event(session, event_type="delivery.succeeded", partner_id=seeded.partner_id,
                         subject_type="delivery", subject_id=delivery.id,
                         correlation_id=seeded.correlation_id, data={"status_code": 200})
            return delivery.id


@dataclass
class ArchiveEnv:
    """A running API with the archive routes, its database, archive and a factory."""

    base_url: str
    database: Database
    blobs: BlobStore
    factory: ArchiveFactory

    def client(self, key: str | None) -> httpx.Client:
        """An HTTP client sending ``key`` as bearer token (none when None)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=f"{self.base_url}/api/v1", headers=headers, timeout=10)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def archive_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A migrated database shared by one test module (SQLite, then PostgreSQL)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("archive-db") / "edigate.sqlite3"
        database = Database.from_url(f"sqlite+pysqlite:///{path}")
        upgrade_to_head(database)
        yield database
        database.dispose()
        return
    url: str = request.getfixturevalue("pg_url")
    schema = create_pg_schema(url)
    database = Database.from_url(url, schema=schema)
    try:
        upgrade_to_head(database)
        yield database
    finally:
        database.dispose()
        drop_pg_schema(url, schema)


@pytest.fixture(scope="module")
def archive_env(
    archive_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArchiveEnv]:
    """The archive API served by uvicorn over ``archive_database``."""
    data_dir: Path = tmp_path_factory.mktemp("archive-data")
    settings = Settings(data_dir=data_dir)
    mounted = "gateway.messages.views" in app_module.ROUTER_MODULES
    app = create_app(settings, database=archive_database, extra_routers=() if mounted else (archive_router,))
    blobs = BlobStore(settings.archive_dir())
    live = serve_in_thread(app)
    try:
        yield ArchiveEnv(live.url, archive_database, blobs, ArchiveFactory(archive_database, blobs))
    finally:
        stop_server(live)
