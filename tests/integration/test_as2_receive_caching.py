"""Receiving caches our parsed keys and partners' AS2 setups per process, yet sees every change at once;
it publishes after answering, and concurrent copies of one message are processed once. Each test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from gateway.processing.publisher import RecordingPublisher
from gateway.secrets import SecretBox
from gateway.store.models import Message
from gateway.transports.as2 import certificates
from gateway.transports.as2.building import BuildOptions, build_message
from gateway.transports.as2.cms import KeyPair
from gateway.transports.as2.mdn import ParsedMdn, parse_mdn
from gateway.transports.as2.models import As2Exchange
from gateway.transports.as2.partners import As2Options, save_options
from tests.conftest_api import LiveServer
from tests.conftest_as2 import OUR_AS2_ID, PARTNER_AS2_ID, As2Setup
from tests.conftest_pipeline import wait_until

pytestmark = pytest.mark.integration

X12 = b"ISA*00*          *00~GS*PO~ST*850*0001~SE*2*0001~GE*1*1~IEA*1*000000001~"


def _post(
    server: LiveServer,
    setup: As2Setup,
    *,
    signer: KeyPair | None = None,
    recipient: KeyPair | None = None,
    message_id: str | None = None,
) -> tuple[httpx.Response, ParsedMdn]:
    built = build_message(
        X12,
        content_type="application/EDI-X12",
        filename="po.edi",
        as2_from=PARTNER_AS2_ID,
        as2_to=OUR_AS2_ID,
        message_id=message_id or f"<{uuid.uuid4().hex}@{PARTNER_AS2_ID}>",
        options=BuildOptions(sign="sha256", encrypt="aes256-cbc"),
        signer=signer or setup.certs.partner,
        recipients=[(recipient or setup.certs.ours).cert],
    )
    response = httpx.post(f"{server.url}/as2", content=built.body, headers=built.headers, timeout=30)
    ours = [setup.certs.ours.cert, setup.certs.ours_second.cert]  # the newest active key signs
    mdn = parse_mdn(response.headers["content-type"], response.content, partner_certs=ours)
    return response, mdn


def test_partner_certificate_and_option_changes_apply_to_the_very_next_message(
    any_as2_server: LiveServer, any_as2_app: As2Setup
) -> None:
    stranger = any_as2_app.certs.stranger
    assert str(_post(any_as2_server, any_as2_app)[1].disposition) == "processed"  # the partner is now cached
    assert "authentication-failed" in str(_post(any_as2_server, any_as2_app, signer=stranger)[1].disposition)
    db = any_as2_app.app.state.db
    with db.unit_of_work() as session:
        row = certificates.add_partner_certificate(
            session, any_as2_app.partner_id, stranger.cert, usage="verify", actor="test"
        )
        cert_id = row.id
    assert str(_post(any_as2_server, any_as2_app, signer=stranger)[1].disposition) == "processed"
    with db.unit_of_work() as session:
        certificates.retire_partner_certificate(session, any_as2_app.partner_id, cert_id, actor="test")
    assert "authentication-failed" in str(_post(any_as2_server, any_as2_app, signer=stranger)[1].disposition)
    with db.unit_of_work() as session:
        save_options(session, any_as2_app.partner_id, As2Options(legacy_micalg=True))
    mdn = _post(any_as2_server, any_as2_app)[1]
    assert mdn.mic is not None and mdn.mic.endswith(", sha256")


def test_a_key_pair_activated_elsewhere_decrypts_the_next_message(
    any_as2_server: LiveServer, any_as2_app: As2Setup
) -> None:
    second = any_as2_app.certs.ours_second
    assert str(_post(any_as2_server, any_as2_app)[1].disposition) == "processed"  # our keys are now cached
    assert "decryption-failed" in str(_post(any_as2_server, any_as2_app, recipient=second)[1].disposition)
    db = any_as2_app.app.state.db
    box = SecretBox.from_settings(any_as2_app.app.state.settings)
    with db.unit_of_work() as session:  # as another process would: nobody tells this one
        key_id = certificates.add_key_pair(
            session, name="next", as2_id=OUR_AS2_ID, key=second.key, cert=second.cert, box=box, actor="test"
        ).id
    assert str(_post(any_as2_server, any_as2_app, recipient=second)[1].disposition) == "processed"
    with db.unit_of_work() as session:
        certificates.set_key_status(session, key_id, "inactive", actor="test")
    assert "decryption-failed" in str(_post(any_as2_server, any_as2_app, recipient=second)[1].disposition)


def test_the_processing_task_is_published_after_the_mdn(
    any_as2_server: LiveServer, any_as2_app: As2Setup
) -> None:
    publisher = any_as2_app.app.state.publisher
    assert isinstance(publisher, RecordingPublisher)
    _post(any_as2_server, any_as2_app)
    wait_until(lambda: publisher.published, timeout=10, message="the processing task")
    with any_as2_app.app.state.db.unit_of_work(read_only=True) as session:
        message_id = session.scalars(select(Message.id)).one()
    assert [kwargs["message_id"] for _, kwargs in publisher.published] == [str(message_id)]


def test_concurrent_copies_of_one_message_are_processed_once(
    any_as2_server: LiveServer, any_as2_app: As2Setup
) -> None:
    message_id = f"<{uuid.uuid4().hex}@{PARTNER_AS2_ID}>"
    dispositions: list[str] = []

    def send() -> None:
        dispositions.append(str(_post(any_as2_server, any_as2_app, message_id=message_id)[1].disposition))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(dispositions) == 6 and all(d.startswith("processed") for d in dispositions)
    with any_as2_app.app.state.db.unit_of_work(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        statuses = sorted(session.scalars(select(As2Exchange.status)))
    assert statuses.count("processed") == 1 and len(statuses) == 6


def test_a_resend_that_no_longer_opens_is_answered_as_a_duplicate(
    any_as2_server: LiveServer, any_as2_app: As2Setup
) -> None:
    message_id = f"<{uuid.uuid4().hex}@{PARTNER_AS2_ID}>"
    assert _post(any_as2_server, any_as2_app, message_id=message_id)[1].disposition.ok
    # Encrypted for a key we do not hold: it does not open, but its Message-ID was processed.
    _, mdn = _post(any_as2_server, any_as2_app, message_id=message_id, recipient=any_as2_app.certs.partner)
    assert "duplicate-document" in str(mdn.disposition) and mdn.disposition.ok
    with any_as2_app.app.state.db.unit_of_work(read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1
        assert sorted(session.scalars(select(As2Exchange.status))) == ["duplicate", "processed"]
