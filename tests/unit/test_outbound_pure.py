"""Pure outbound logic: validation with field-level errors, transport choice, renumbering."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.outbound.errors import DocumentInvalid
from gateway.outbound.replay import RenumberError, count_envelopes, renumber
from gateway.outbound.routing import NoOutboundTransport, outbound_transport
from gateway.outbound.validation import validate_document
from gateway.store.enums import Transport
from partner_profiles.schema import DeadlineRule, PartnerProfile
from tests.conftest_outbound import envelope_numbers, outbound_profile, sample_document


def _profile(**changes: Any) -> PartnerProfile:
    return PartnerProfile.model_validate(outbound_profile(**changes))


def test_a_valid_855_is_parsed_for_a_partner_taking_it_outbound() -> None:
    document = validate_document(_profile(), "order_acknowledgment", sample_document("order_acknowledgment"))
    assert document.document_type == "order_acknowledgment"


def test_schema_errors_name_each_field() -> None:
    data = sample_document("order_acknowledgment")
    data["lines"][1]["unit_price"] = "cheap"
    data["po_date"] = "22/11/2026"
    with pytest.raises(DocumentInvalid) as caught:
        validate_document(_profile(), "order_acknowledgment", data)
    fields = {p["field"] for p in caught.value.problems}
    assert {"lines[1].unit_price", "po_date"} <= fields


def test_the_partners_required_fields_are_enforced() -> None:
    profile = _profile(mappings={"required": {"order_acknowledgment": ["lines[].item.vendor_part"]}})
    with pytest.raises(DocumentInvalid) as caught:
        validate_document(profile, "order_acknowledgment", sample_document("order_acknowledgment"))
    assert caught.value.problems == [
        {"field": "lines[1].item.vendor_part", "message": "required by partner acme-retail"}
    ]


def test_a_type_the_partner_only_sends_us_is_refused() -> None:
    with pytest.raises(DocumentInvalid) as caught:
        validate_document(_profile(), "purchase_order", sample_document("purchase_order"))
    assert caught.value.problems[0]["field"] == "document_type"


def test_a_body_saying_another_type_than_the_url_is_refused() -> None:
    with pytest.raises(DocumentInvalid, match="URL says"):
        validate_document(_profile(), "invoice", sample_document("order_acknowledgment"))


def test_transport_is_the_explicit_choice_or_the_first_configured() -> None:
    assert outbound_transport(_profile()) is Transport.HTTP
    sftp = {"remote": {"host": "h", "username": "u", "host_key": "ssh-ed25519 AAAA"}}
    assert (
        outbound_transport(
            _profile(transports={"sftp": sftp, "outbound": "sftp", "http": {"outbound_url": "https://x"}})
        )
        is Transport.SFTP
    )
    with pytest.raises(NoOutboundTransport):
        outbound_transport(_profile(transports={}))


X12 = (
    "ISA*00*          *00*          *ZZ*DISTCO         *ZZ*ACMERETAIL     "
    "*261122*0930*U*00401*000000007*0*T*>~\n"
    "GS*PR*DISTCO*ACMERETAIL*20261122*0930*7*X*004010~\nST*855*0007~\nBAK*00*AC*PO-1*20261122~\nSE*3*0007~\n"
    "ST*855*0008~\nBAK*00*AC*PO-2*20261122~\nSE*3*0008~\nGE*2*7~\nIEA*1*000000007~\n"
)


def test_renumbering_replaces_headers_and_their_trailers_and_nothing_else() -> None:
    assert count_envelopes(X12) == (1, 1, 2)
    result = renumber(X12, isa13=42, gs06=300, st02=9)
    numbers = envelope_numbers(result.text)
    assert numbers["isa13"] == "000000042"
    assert numbers["groups"] == [
        {"functional_id": "PR", "gs06": "300", "sets": [("855", "0009"), ("855", "0010")]}
    ]
    assert "IEA*1*000000042~" in result.text and "GE*2*300~" in result.text
    assert "SE*3*0009~" in result.text and "SE*3*0010~" in result.text
    assert result.text.replace("000000042", "000000007").count("PO-") == 2
    assert result.transactions == [("0007", "0009"), ("0008", "0010")]
    assert len(result.text) == len(X12) + 4  # GS06 and GE02: 7 -> 300


def test_renumbering_refuses_what_is_not_x12() -> None:
    with pytest.raises(RenumberError):
        renumber("hello", isa13=1, gs06=1, st02=1)


def test_deadline_rules_need_their_fields_and_have_readable_names() -> None:
    rule = DeadlineRule.model_validate(
        {"rule": "within", "document": "order_acknowledgment", "of": "purchase_order", "hours": 24}
    )
    assert rule.name == "order_acknowledgment within 24h of purchase_order"
    assert DeadlineRule.model_validate(
        {"rule": "inactivity", "document": "purchase_order", "days": 3}
    ).name == ("no purchase_order for 3d")
    with pytest.raises(ValueError, match="needs before"):
        DeadlineRule.model_validate({"rule": "before", "document": "ship_notice"})
