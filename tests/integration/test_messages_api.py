"""Message detail, raw bytes, timeline, documents and replay over a real HTTP server."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from gateway.store.enums import ApiKeyRole, Direction, MessageStatus, OutboxStatus, Transport
from gateway.store.models import Message, OutboxEntry
from tests.conftest_archive import ArchiveEnv, SeededMessage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def auditor_key(archive_env: ArchiveEnv) -> str:
    return archive_env.factory.api_key(ApiKeyRole.AUDITOR)


@pytest.fixture(scope="module")
def admin_key(archive_env: ArchiveEnv) -> str:
    return archive_env.factory.api_key(ApiKeyRole.ADMIN)


def _get(env: ArchiveEnv, key: str, path: str, **kwargs: Any) -> dict[str, Any]:
    with env.client(key) as client:
        response = client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _seed_with_errors(env: ArchiveEnv) -> SeededMessage:
    partner = env.factory.new_partner()
    return env.factory.message(
        partner,
        status=MessageStatus.REJECTED,
        error="transaction 0001 rejected",
        transaction_errors=[{"code": "7", "segment": "PO1", "position": 5, "message": "bad quantity"}],
    )


def test_message_detail_has_its_envelope_tree_documents_and_located_errors(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    seeded = _seed_with_errors(archive_env)
    body = _get(archive_env, auditor_key, f"/messages/{seeded.message_id}")
    assert body["id"] == str(seeded.message_id) and body["status"] == "rejected"
    [interchange] = body["interchanges"]
    assert interchange["sender"] == {"qualifier": "ZZ", "id": "ACMERETAIL"}
    [group] = interchange["groups"]
    [transaction] = group["transactions"]
    assert transaction["set_id"] == "850" and transaction["status"] == "rejected"
    assert transaction["document"]["id"] == str(seeded.document_id)
    assert transaction["document"]["references"][0]["qualifier"] == "po_number"
    assert [doc["id"] for doc in body["documents"]] == [str(seeded.document_id)]
    assert body["errors"][0] == {"level": "message", "error": "transaction 0001 rejected",
                                 "interchange_control_number": None, "group_control_number": None,
                                 "transaction_control_number": None, "transaction_id": None}
    located = body["errors"][1]
    assert located["transaction_id"] == str(seeded.transaction_id)
    assert located["interchange_control_number"] == interchange["control_number"]
    assert located["error"]["segment"] == "PO1"
    assert body["acknowledgment"] == {"status": None, "expectations": []}
    assert body["replays"] == []


def test_unknown_message_is_404_and_malformed_id_is_422(archive_env: ArchiveEnv, auditor_key: str) -> None:
    with archive_env.client(auditor_key) as client:
        missing = client.get(f"/messages/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert client.get("/messages/not-a-uuid").status_code == 422


def test_raw_streams_the_archived_bytes_with_length_digest_and_etag(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    with archive_env.client(auditor_key) as client:
        response = client.get(f"/messages/{seeded.message_id}/raw")
        assert response.status_code == 200
        assert response.content == seeded.content
        assert response.headers["content-type"].startswith("application/edi-x12")
        assert response.headers["content-length"] == str(len(seeded.content))
        digest = base64.b64encode(hashlib.sha256(seeded.content).digest()).decode()
        assert response.headers["digest"] == f"sha-256={digest}"
        assert response.headers["etag"] == f'"{seeded.sha256}"'
        assert "attachment" in response.headers["content-disposition"]
        etag = response.headers["etag"]
        again = client.get(f"/messages/{seeded.message_id}/raw", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""


def test_timeline_lists_message_document_and_delivery_events_in_chain_order(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    archive_env.factory.message(archive_env.factory.new_partner())  # unrelated events in between
    archive_env.factory.delivery(seeded)
    body = _get(archive_env, auditor_key, f"/messages/{seeded.message_id}/timeline")
    assert [event["event_type"] for event in body["items"]] == [
        "message.received", "document.created", "delivery.succeeded"
    ]
    ids = [event["id"] for event in body["items"]]
    assert ids == sorted(ids)
    assert body["chain_verified"] is True and body["chain_check"]["mode"] == "range"
    assert body["next"] is None
    first = _get(archive_env, auditor_key, f"/messages/{seeded.message_id}/timeline", params={"limit": 2})
    assert len(first["items"]) == 2 and first["next"]
    rest = _get(archive_env, auditor_key, f"/messages/{seeded.message_id}/timeline",
                params={"cursor": first["next"]})
    assert [event["id"] for event in first["items"] + rest["items"]] == ids


def test_document_shows_data_profile_version_references_and_lineage_without_secrets(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner(), po_number="PO-DOC-1")
    delivery_id = archive_env.factory.delivery(seeded)
    with archive_env.client(auditor_key) as client:
        response = client.get(f"/documents/{seeded.document_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["po_number"] == "PO-DOC-1"
    assert body["profile_version"] == 1 and body["profile_sha256"] == "ab" * 32
    assert body["references"] == [{"qualifier": "po_number", "value": "PO-DOC-1"}]
    lineage = body["lineage"]
    assert lineage["message"]["id"] == str(seeded.message_id)
    assert lineage["interchange"]["id"] == str(seeded.interchange_id)
    assert lineage["group"]["id"] == str(seeded.group_id)
    assert lineage["transaction"]["id"] == str(seeded.transaction_id)
    [delivery] = lineage["deliveries"]
    assert delivery["id"] == str(delivery_id) and delivery["attempts"][0]["status_code"] == 200
    assert "ciphertext" not in response.text and "secret" not in response.text


def test_inbound_replay_creates_a_linked_message_an_outbox_task_and_events(
    archive_env: ArchiveEnv, admin_key: str, auditor_key: str
) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    with archive_env.client(admin_key) as client:
        response = client.post(f"/messages/{seeded.message_id}/replay",
                                json={"duplicate_check": False, "send_acks": True})
    assert response.status_code == 202, response.text
    new_id = uuid.UUID(response.json()["message_id"])
    assert response.json()["replay_of_id"] == str(seeded.message_id)
    with archive_env.database.unit_of_work(read_only=True) as session:
        replay = session.get_one(Message, new_id)
        assert replay.replay_of_id == seeded.message_id and replay.transport is Transport.REPLAY
        assert replay.content_sha256 == seeded.sha256 and replay.status is MessageStatus.RECEIVED
        [entry] = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id == new_id)).all()
        assert entry.task_name == "process_message" and entry.status is OutboxStatus.PENDING
        assert entry.task_args == {"message_id": str(new_id), "replay_of_id": str(seeded.message_id),
                                   "duplicate_check": False, "send_acks": True, "control_numbers": None}
    original = _get(archive_env, auditor_key, f"/messages/{seeded.message_id}")
    assert original["replays"] == [str(new_id)]
    for message_id in (seeded.message_id, new_id):
        timeline = _get(archive_env, auditor_key, f"/messages/{message_id}/timeline")
        assert timeline["items"][-1]["event_type"] == "message.replayed"
        assert timeline["items"][-1]["actor"].startswith("key:")
        assert timeline["chain_verified"] is True
    with archive_env.client(auditor_key) as client:
        raw = client.get(f"/messages/{new_id}/raw")
    assert raw.content == seeded.content


def test_outbound_replay_queues_a_send_with_the_control_number_policy(
    archive_env: ArchiveEnv, admin_key: str
) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner(), direction=Direction.OUTBOUND,
                                         document_type="invoice", status=MessageStatus.SENT)
    with archive_env.client(admin_key) as client:
        response = client.post(f"/messages/{seeded.message_id}/replay",
                               json={"duplicate_check": True, "send_acks": False, "control_numbers": "same"})
    assert response.status_code == 202
    new_id = uuid.UUID(response.json()["message_id"])
    with archive_env.database.unit_of_work(read_only=True) as session:
        assert session.get_one(Message, new_id).status is MessageStatus.QUEUED
        [entry] = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id == new_id)).all()
        assert entry.task_name == "send_message"
        assert entry.task_args["control_numbers"] == "same" and entry.task_args["duplicate_check"] is True


def test_replay_must_state_its_options_and_rejects_control_numbers_for_inbound(
    archive_env: ArchiveEnv, admin_key: str
) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    with archive_env.client(admin_key) as client:
        url = f"/messages/{seeded.message_id}/replay"
        assert client.post(url, json={}).status_code == 422
        wrong = client.post(url, json={"duplicate_check": True, "send_acks": True, "control_numbers": "new"})
        assert wrong.status_code == 422 and "outbound" in wrong.json()["error"]["message"]
        assert client.post(f"/messages/{uuid.uuid4()}/replay",
                           json={"duplicate_check": True, "send_acks": True}).status_code == 404


@pytest.mark.parametrize("role", [ApiKeyRole.AUDITOR, ApiKeyRole.ERP, ApiKeyRole.ONBOARDING])
def test_only_admins_may_replay(archive_env: ArchiveEnv, role: ApiKeyRole) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    with archive_env.client(archive_env.factory.api_key(role)) as client:
        response = client.post(f"/messages/{seeded.message_id}/replay",
                               json={"duplicate_check": True, "send_acks": True})
    assert response.status_code == 403


@pytest.mark.parametrize("role", [ApiKeyRole.AUDITOR, ApiKeyRole.ERP])
def test_reader_roles_may_read_every_view(archive_env: ArchiveEnv, role: ApiKeyRole) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    with archive_env.client(archive_env.factory.api_key(role)) as client:
        for path in (f"/messages/{seeded.message_id}", f"/messages/{seeded.message_id}/raw",
                     f"/messages/{seeded.message_id}/timeline", f"/documents/{seeded.document_id}"):
            assert client.get(path).status_code == 200, path


def test_onboarding_may_read_no_view(archive_env: ArchiveEnv) -> None:
    seeded = archive_env.factory.message(archive_env.factory.new_partner())
    with archive_env.client(archive_env.factory.api_key(ApiKeyRole.ONBOARDING)) as client:
        for path in (f"/messages/{seeded.message_id}", f"/messages/{seeded.message_id}/raw",
                     f"/messages/{seeded.message_id}/timeline", f"/documents/{seeded.document_id}"):
            assert client.get(path).status_code == 403, path


def test_partner_key_reads_its_own_rows_and_gets_403_for_another_partners(archive_env: ArchiveEnv) -> None:
    factory = archive_env.factory
    mine, theirs = factory.new_partner("mine"), factory.new_partner("theirs")
    own, other = factory.message(mine), factory.message(theirs)
    with archive_env.client(factory.api_key(ApiKeyRole.PARTNER, partner_id=mine)) as client:
        for seeded, status in ((own, 200), (other, 403)):
            for path in (f"/messages/{seeded.message_id}", f"/messages/{seeded.message_id}/raw",
                         f"/messages/{seeded.message_id}/timeline", f"/documents/{seeded.document_id}"):
                response = client.get(path)
                assert response.status_code == status, path
                if status == 403:
                    assert str(seeded.partner_id) not in response.text
