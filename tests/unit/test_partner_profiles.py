"""Pure partner-profile logic: secret splitting and masking, merge patch, field-naming errors,
and the side-effect-free sample preview."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from partner_profiles.secrets import (
    MASK,
    mask_secrets,
    pointer,
    pointer_to_field,
    restore_secrets,
    secret_names,
    split_secrets,
)
from partner_profiles.service import ProfileRejected, merge_patch, preview_sample, validate_profile_data
from tests.conftest_api import sample_profile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_secrets_are_replaced_by_refs_named_by_their_json_pointer() -> None:
    profile = sample_profile()
    profile["transports"]["http"]["headers"] = {"X-Api-Key": "k1", "a/b~c": "k2"}
    split = split_secrets(validate_profile_data(profile))
    assert split.secrets == {
        "/transports/sftp/remote/password": "s3cret-pw",
        "/transports/http/headers/X-Api-Key": "k1",
        "/transports/http/headers/a~1b~0c": "k2",
    }
    remote = split.document["transports"]["sftp"]["remote"]
    assert remote["password"] == {"secret_ref": "/transports/sftp/remote/password"}
    assert "s3cret-pw" not in repr(split.document)
    assert pointer_to_field("/transports/http/headers/a~1b~0c") == "transports.http.headers.a/b~c"


def test_masking_shows_every_secret_as_stars() -> None:
    document = split_secrets(validate_profile_data(sample_profile())).document
    masked = mask_secrets(document)
    assert masked["transports"]["sftp"]["remote"]["password"] == MASK
    assert masked["transports"]["http"]["headers"] == {"X-Api-Key": MASK}
    assert masked["x12"] == document["x12"]


def test_restoring_puts_values_back_and_drops_refs_without_a_value() -> None:
    document = split_secrets(validate_profile_data(sample_profile())).document
    restored = restore_secrets(document, {"/transports/sftp/remote/password": "new-pw"})
    assert restored["transports"]["sftp"]["remote"]["password"] == "new-pw"
    assert restored["transports"]["http"]["headers"] == {}
    assert validate_profile_data(restored).transports.sftp is not None


def test_a_lookalike_ref_elsewhere_is_left_alone() -> None:
    document = {"json_mapping": {"x": {"secret_ref": "/somewhere/else"}}}
    assert mask_secrets(document) == document
    assert secret_names(document) == []
    assert pointer(["json_mapping", "x"]) == "/json_mapping/x"


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "keep": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "keep": [3], "new": {"x": 1}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "keep": [3], "new": {"x": 1}}
    assert target["c"] == {"d": "e", "f": "g"}  # not modified
    assert merge_patch({"a": 1}, ["list"]) == ["list"]


def test_invalid_profile_names_each_bad_field() -> None:
    profile = sample_profile(status="live")
    profile["x12"]["interchange_id"] = {"qualifier": "ZZ", "id": "X" * 20}
    with pytest.raises(ProfileRejected) as caught:
        validate_profile_data(profile)
    fields = {p["field"] for p in caught.value.problems}
    assert {"status", "x12.interchange_id.id"} <= fields


def test_a_profile_must_be_a_mapping() -> None:
    with pytest.raises(ProfileRejected) as caught:
        validate_profile_data(["not", "a", "mapping"])
    assert caught.value.problems[0]["field"] == "(root)"


def test_sample_preview_reports_documents_and_the_acks_it_would_send() -> None:
    profile = validate_profile_data(sample_profile())
    result = preview_sample(profile, (FIXTURES / "po_004010.x12").read_bytes(),
                            now=datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    assert result["accepted"] is True
    transaction = result["report"]["interchanges"][0]["groups"][0]["transactions"][0]
    assert transaction["document"]["po_number"] == "PO-10001"
    assert [a["kind"] for a in result["acknowledgments"]] == ["TA1", "997"]  # the sample sets ISA14=1
    assert result["acknowledgments"][0]["text"].startswith("ISA*")
    assert result["notes"] == []


def test_sample_preview_notes_a_sender_that_is_not_the_partner() -> None:
    profile = sample_profile()
    profile["x12"]["interchange_id"] = {"qualifier": "ZZ", "id": "SOMEONEELSE"}
    result = preview_sample(validate_profile_data(profile), (FIXTURES / "po_004010.x12").read_bytes())
    assert "ZZ:ACMERETAIL" in result["notes"][0]
