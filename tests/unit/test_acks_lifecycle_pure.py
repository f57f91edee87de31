"""Pure acknowledgment logic: AK5 codes to set states, error detail, expectation plans."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.acks.expectations import plan_for
from gateway.acks.reconcile import set_errors, set_status
from gateway.store.enums import AckStatus
from translators.acks import SegmentNote, SetAck
from translators.settings import AcknowledgmentSettings, EnvelopeSettings, PartyId


def _set(status: str, **kw: Any) -> SetAck:
    return SetAck(set_id="855", control_number="0001", implementation_reference="", status=status, **kw)


def test_ak5_codes_map_to_states_and_unlisted_sets_follow_the_group() -> None:
    assert set_status(_set("A"), AckStatus.REJECTED) is AckStatus.ACCEPTED
    assert set_status(_set("E"), AckStatus.ACCEPTED) is AckStatus.ACCEPTED_WITH_ERRORS
    for code in "RMWX":
        assert set_status(_set(code), AckStatus.ACCEPTED) is AckStatus.REJECTED
    assert set_status(None, AckStatus.REJECTED) is AckStatus.REJECTED
    assert set_status(None, AckStatus.PARTIALLY_ACCEPTED) is AckStatus.ACCEPTED
    assert set_status(_set(""), AckStatus.ACCEPTED) is AckStatus.ACCEPTED


def test_error_detail_keeps_segment_and_set_codes() -> None:
    note = SegmentNote(segment_tag="BAK", segment_position=2, loop_id="", code="8", elements=[])
    errors = set_errors(_set("R", codes=["5"], segments=[note]))
    assert errors[0] == {"level": "transaction", "code": "5"}
    assert errors[1]["segment"] == "BAK" and errors[1]["code"] == "8"


def _envelope(**ack: object) -> EnvelopeSettings:
    return EnvelopeSettings(
        interchange_id=PartyId(id="P"),
        our_id=PartyId(id="US"),
        acknowledgment=AcknowledgmentSettings.model_validate(ack),
    )


def test_the_profile_decides_which_ack_is_expected_and_when() -> None:
    plan = plan_for(_envelope(type="auto", expect_within_hours=2), "005010")
    assert plan is not None and plan.ack_type == "999" and plan.window == timedelta(hours=2)
    assert plan_for(_envelope(type="auto"), "004010").ack_type == "997"  # type: ignore[union-attr]
    assert plan_for(_envelope(type="none"), "004010") is None
