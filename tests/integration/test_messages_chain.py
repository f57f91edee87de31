"""A timeline says when the event trail around its events was tampered with."""

from __future__ import annotations

import pytest

from gateway.store.enums import ApiKeyRole
from gateway.store.models import Event
from tests.conftest_archive import ArchiveEnv

pytestmark = pytest.mark.integration


def test_altered_event_makes_the_timeline_report_a_broken_chain(archive_env: ArchiveEnv) -> None:
    factory = archive_env.factory
    seeded = factory.message(factory.new_partner())
    key = factory.api_key(ApiKeyRole.AUDITOR)
    path = f"/messages/{seeded.message_id}/timeline"
    with archive_env.client(key) as client:
        before = client.get(path).json()
        assert before["chain_verified"] is True
        first_id = before["items"][0]["id"]
        with archive_env.database.engine.begin() as connection:
            if archive_env.database.is_sqlite:
                connection.exec_driver_sql("DROP TRIGGER events_no_update")
            else:
                connection.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER events_append_only")
        with archive_env.database.unit_of_work() as session:
            event = session.get_one(Event, first_id)
            event.data = {**event.data, "size": 1}
        after = client.get(path).json()
    assert after["chain_verified"] is False
    assert any(f"event {first_id}" in reason for reason in after["chain_check"]["breaks"])
