"""GET /messages: every filter, keyset pages, full text, roles and partner isolation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.keyset import encode_position
from gateway.store.enums import AckStatus, ApiKeyRole, Direction, MessageStatus, Transport
from gateway.store.models import FunctionalGroup, Interchange, TransactionSet
from tests.conftest_archive import ArchiveEnv

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def _finder(env: ArchiveEnv, key: str) -> Callable[..., list[str]]:
    return lambda **params: _ids(_search(env, key, **params))


def _search(env: ArchiveEnv, key: str, **params: Any) -> dict[str, Any]:
    with env.client(key) as client:
        response = client.get("/messages", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def auditor_key(archive_env: ArchiveEnv) -> str:
    return archive_env.factory.api_key(ApiKeyRole.AUDITOR)


def test_results_are_newest_first_and_pages_follow_the_cursor_without_gaps(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    factory = archive_env.factory
    partner = factory.new_partner()
    same_instant = T0 + timedelta(minutes=5)
    made = [factory.message(partner, received_at=T0 + timedelta(minutes=i)) for i in range(5)]
    made += [factory.message(partner, received_at=same_instant) for _ in range(2)]  # ties broken by id
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"partner": partner, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = _search(archive_env, auditor_key, **params)
        seen += _ids(body)
        cursor = body["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(m.message_id) for m in made)
    assert len(seen) == len(set(seen)) == 7
    full = _search(archive_env, auditor_key, partner=partner)["items"]
    keys = [(item["received_at"], item["id"]) for item in full]
    assert keys == sorted(keys, reverse=True)
    assert [item["id"] for item in full] == seen


def test_each_column_filter_narrows_the_results(archive_env: ArchiveEnv, auditor_key: str) -> None:
    find = _finder(archive_env, auditor_key)
    factory = archive_env.factory
    partner = factory.new_partner()
    inbound = factory.message(partner, received_at=T0)
    outbound = factory.message(partner, direction=Direction.OUTBOUND, document_type="invoice",
                               transport=Transport.SFTP, status=MessageStatus.SENT,
                               ack_status=AckStatus.OVERDUE, received_at=T0 + timedelta(hours=2))
    base = {"partner": partner}
    assert find(**base, direction="outbound") == [str(outbound.message_id)]
    assert find(**base, transport="as2") == [str(inbound.message_id)]
    assert find(**base, status="sent") == [str(outbound.message_id)]
    assert find(**base, ack_status="overdue") == [str(outbound.message_id)]
    assert find(**base, document_type="purchase_order") == [str(inbound.message_id)]
    window = {"received_from": (T0 + timedelta(hours=1)).isoformat(),
              "received_to": (T0 + timedelta(hours=3)).isoformat()}
    assert find(**base, **window) == [str(outbound.message_id)]
    # received_to is exclusive: a window ending exactly at T0 misses the T0 message
    assert find(**base, received_to=T0.isoformat()) == []
    assert find(**base, direction="inbound", status="sent") == []


def test_control_number_filters_find_the_message_carrying_them(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    find = _finder(archive_env, auditor_key)
    factory = archive_env.factory
    partner = factory.new_partner()
    first, second = factory.message(partner), factory.message(partner)
    with archive_env.database.unit_of_work(read_only=True) as session:
        isa13 = session.get_one(Interchange, second.interchange_id).control_number
        gs06 = session.get_one(FunctionalGroup, second.group_id).control_number
        st02 = session.get_one(TransactionSet, second.transaction_id).control_number
    expected = [str(second.message_id)]
    assert find(partner=partner, interchange_control_number=isa13) == expected
    assert find(partner=partner, interchange_control_number=isa13.lstrip("0")) == expected
    assert find(interchange_control_number=isa13, direction="inbound") == expected
    assert find(partner=partner, group_control_number=gs06) == expected
    assert find(partner=partner, transaction_control_number=st02) == expected
    assert str(first.message_id) not in find(group_control_number=gs06)


def test_reference_finds_every_message_about_a_po_number(archive_env: ArchiveEnv, auditor_key: str) -> None:
    factory = archive_env.factory
    partner = factory.new_partner()
    order = factory.message(partner, po_number="PO-REF-77001")
    invoice = factory.message(partner, po_number="PO-REF-77001", document_type="invoice",
                              direction=Direction.OUTBOUND)
    factory.message(partner, po_number="PO-REF-77002")
    found = _ids(_search(archive_env, auditor_key, reference="PO-REF-77001"))
    assert sorted(found) == sorted([str(order.message_id), str(invoice.message_id)])


def test_full_text_searches_document_data_and_error_text(archive_env: ArchiveEnv, auditor_key: str) -> None:
    find = _finder(archive_env, auditor_key)
    factory = archive_env.factory
    partner = factory.new_partner()
    data = {"po_number": "PO-FT-1", "notes": ["Deliver to dock Zanzibar"],
            "lines": [{"item": {"description": "Turquoise gizmo"}}]}
    widget = factory.message(partner, data=data)
    broken = factory.message(partner, status=MessageStatus.REJECTED,
                             error="ISA13 control number mismatch in IEA02 (Quokka)")
    assert find(partner=partner, q="zanzibar") == [str(widget.message_id)]
    assert find(partner=partner, q="turquoise gizmo") == [str(widget.message_id)]
    assert find(partner=partner, q="quokka mismatch") == [str(broken.message_id)]
    assert find(partner=partner, q="PO-FT-1") == [str(widget.message_id)]
    assert find(partner=partner, q="zanzibar quokka") == []
    assert find(partner=partner, q="nothing-like-this") == []


def test_invalid_filters_and_cursors_answer_in_the_error_envelope(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    with archive_env.client(auditor_key) as client:
        for params, status, code in [
            ({"direction": "sideways"}, 422, "validation_error"),
            ({"limit": 0}, 422, "validation_error"),
            ({"partner_id": "typo"}, 422, "validation_error"),
            ({"cursor": "garbage"}, 400, "invalid_cursor"),
        ]:
            response = client.get("/messages", params=params)
            assert response.status_code == status, params
            assert response.json()["error"]["code"] == code


def test_every_paged_list_refuses_a_cursor_made_for_another_list(
    archive_env: ArchiveEnv, auditor_key: str
) -> None:
    factory = archive_env.factory
    partner = factory.new_partner()
    for _ in range(2):
        factory.message(partner)
    not_a_uuid = encode_position("deliveries", datetime.now(UTC), 7)
    messages_cursor = _search(archive_env, auditor_key, partner=partner, limit=1)["next"]
    assert messages_cursor
    with archive_env.client(auditor_key) as client:
        for path, cursor in [("/deliveries", messages_cursor), ("/deliveries", "garbage"),
                             ("/deliveries", not_a_uuid), ("/acks", messages_cursor), ("/acks", not_a_uuid),
                             ("/acks", "garbage"), ("/acks/unmatched", messages_cursor)]:
            response = client.get(path, params={"cursor": cursor})
            assert response.status_code == 400, (path, cursor)
            assert response.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("role", [ApiKeyRole.AUDITOR, ApiKeyRole.ERP, ApiKeyRole.ADMIN])
def test_internal_reader_roles_may_search(archive_env: ArchiveEnv, role: ApiKeyRole) -> None:
    factory = archive_env.factory
    partner = factory.new_partner()
    seeded = factory.message(partner)
    assert _ids(_search(archive_env, factory.api_key(role), partner=partner)) == [str(seeded.message_id)]


def test_onboarding_and_anonymous_callers_may_not_search(archive_env: ArchiveEnv) -> None:
    with archive_env.client(archive_env.factory.api_key(ApiKeyRole.ONBOARDING)) as client:
        response = client.get("/messages")
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    with archive_env.client(None) as client:
        assert client.get("/messages").status_code == 401


def test_partner_key_only_ever_sees_its_own_partners_messages(archive_env: ArchiveEnv) -> None:
    factory = archive_env.factory
    mine, theirs = factory.new_partner("mine"), factory.new_partner("theirs")
    own = factory.message(mine, po_number="PO-SHARED-1")
    factory.message(theirs, po_number="PO-SHARED-1")
    key = factory.api_key(ApiKeyRole.PARTNER, partner_id=mine)
    assert _ids(_search(archive_env, key)) == [str(own.message_id)]
    assert _ids(_search(archive_env, key, reference="PO-SHARED-1")) == [str(own.message_id)]
    assert _ids(_search(archive_env, key, partner=mine)) == [str(own.message_id)]
    with archive_env.client(key) as client:
        response = client.get("/messages", params={"partner": theirs})
    assert response.status_code == 403
    assert "items" not in response.json()
