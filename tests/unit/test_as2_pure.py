"""Pure AS2 pieces: algorithm names, MIME on raw bytes, MDN build/parse, the CMS engine, MIC rules."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.transports.as2 import cms
from gateway.transports.as2.algorithms import choose_mic_digest, micalg_name, normalize_digest, same_mic
from gateway.transports.as2.building import BuildOptions, build_message
from gateway.transports.as2.mdn import Disposition, build_mdn, parse_mdn
from gateway.transports.as2.mime import (
    filename_of,
    parse_entity,
    quote_as2_name,
    sanitize_filename,
    split_multipart,
    unquote_as2_name,
)
from gateway.transports.as2.receiving import parse_mdn_request
from gateway.transports.as2.unwrap import UnwrapError, top_entity, unwrap
from tests.conftest_as2 import As2Certs


@pytest.mark.parametrize("name", ["sha256", "sha-256", "SHA256", "sha_256", " SHA-256 ", '"sha-256"'])
def test_every_spelling_of_sha256_is_understood(name: str) -> None:
    assert normalize_digest(name) == "sha256"


def test_the_first_supported_micalg_is_chosen_not_the_last() -> None:
    assert choose_mic_digest(["md2", "sha-384", "sha256"]) == "sha384"
    assert choose_mic_digest(["md2"]) is None


def test_mics_compare_insensitively_on_the_algorithm_spelling() -> None:
    assert same_mic("abc=, sha-256", "abc=,SHA256")
    assert not same_mic("abc=, sha-256", "abd=, sha-256")
    assert micalg_name("sha256") == "sha-256" and micalg_name("sha256", legacy=True) == "sha256"


def test_multipart_parts_are_the_exact_bytes_between_boundaries() -> None:
    body = b"pre\r\n--b\r\nA: 1\r\n\r\nx\n\r\n--b\r\nB: 2\r\n\r\ny\r\n--b--\r\n"
    assert split_multipart(body, "b") == [b"A: 1\r\n\r\nx\n", b"B: 2\r\n\r\ny"]


def test_filenames_are_decoded_and_sanitised() -> None:
    entity = parse_entity(b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%2F..%2Fx.edi\r\n\r\n")
    assert sanitize_filename(filename_of(entity), fallback="f") == "x.edi"
    assert sanitize_filename("..", fallback="fallback.edi") == "fallback.edi"
    assert sanitize_filename("AUX.edi", fallback="f") == "_AUX.edi"
    encoded = parse_entity(
        b'Content-Type: application/edi-x12; name="=?utf-8?q?r=C3=A9sum=C3=A9.edi?="\r\n\r\n'
    )
    assert filename_of(encoded) == "résumé.edi"


def test_as2_names_with_spaces_are_quoted_and_unquoted() -> None:
    assert quote_as2_name("PARTNER WITH SPACE") == '"PARTNER WITH SPACE"'
    assert quote_as2_name("ACME") == "ACME"
    assert unquote_as2_name('"PARTNER WITH SPACE"') == "PARTNER WITH SPACE"


def test_mdn_options_are_read_leniently() -> None:
    request = parse_mdn_request(
        {
            "disposition-notification-to": "x",
            "disposition-notification-options": (
                "signed-receipt-protocol=required,pkcs7-signature;"
                "signed-receipt-micalg=required, sha1, sha-256"
            ),
            "receipt-delivery-option": "https://partner.example/mdn",
        }
    )
    assert (request.signed, request.signed_required, request.micalgs, request.mode) == (
        True,
        True,
        ("sha1", "sha-256"),
        "async",
    )


@pytest.mark.parametrize(
    "value",
    [
        "automatic-action/MDN-sent-automatically; processed/Warning: duplicate-document",
        "automatic-action/MDN-sent-automatically;processed/warning:duplicate-document",
    ],
)
def test_dispositions_parse_with_any_case_and_spacing(value: str) -> None:
    disposition = Disposition.parse(value)
    assert str(disposition) == "processed/warning: duplicate-document" and disposition.ok


def test_signed_mdn_round_trips_and_copies_the_original_message_id_exactly(as2_certs: As2Certs) -> None:
    mdn = build_mdn(
        our_as2_id="US",
        partner_as2_id="THEM ONE",
        original_message_id="<a b@c>",
        disposition=Disposition(),
        mic="abc=, sha-256",
        signer=as2_certs.ours,
    )
    assert mdn.headers["AS2-To"] == '"THEM ONE"' and mdn.headers["Content-Length"] == str(len(mdn.body))
    parsed = parse_mdn(mdn.headers["Content-Type"], mdn.body, partner_certs=[as2_certs.ours.cert])
    assert (parsed.signed, parsed.original_message_id, parsed.mic) == (True, "<a b@c>", "abc=, sha-256")


def test_mdn_without_a_report_wrapper_is_read() -> None:
    parsed = parse_mdn(
        "message/disposition-notification",
        b"original-message-id: <x@y>\r\nreceived-content-mic:  abc= ,  SHA1\r\n"
        b"Disposition: automatic-action/MDN-sent-automatically;processed/error: decryption-failed\r\n",
    )
    assert parsed.original_message_id == "<x@y>" and not parsed.disposition.ok and not parsed.signed


def test_mic_rules_signed_encrypted_unsigned_and_plain(as2_certs: As2Certs) -> None:
    payload = b"ISA*00~\r\n"
    for sign, encrypt, expected_source in [
        ("sha256", "aes256-cbc", "entity"),
        (None, "aes256-cbc", "entity"),
        (None, None, "content"),
    ]:
        built = build_message(
            payload,
            content_type="application/edi-x12",
            filename=None,
            as2_from="US",
            as2_to="THEM",
            message_id="<m@US>",
            options=BuildOptions(sign=sign, encrypt=encrypt),
            signer=as2_certs.partner,
            recipients=[as2_certs.ours.cert],
        )
        entity = top_entity(built.headers["Content-Type"], built.body)
        opened = unwrap(entity, keys=[as2_certs.ours], verify_certs=[as2_certs.partner.cert])
        assert opened.payload.decoded_body() == payload
        assert opened.mic("sha256") == built.mic
        assert (opened.mic_source is None) == (expected_source == "content")
        source = payload if opened.mic_source is None else opened.mic_source.read()
        assert built.mic.startswith(base64.b64encode(hashlib.sha256(source).digest()).decode())


def test_every_decryption_failure_looks_the_same(as2_certs: As2Certs) -> None:
    envelope = cms.encrypt(b"x", [as2_certs.stranger.cert])
    errors = []
    for data in (envelope, envelope[:50], b"garbage", cms.compress(b"x")):
        with pytest.raises(cms.DecryptionFailed) as failure:
            cms.decrypt(data, [as2_certs.ours])
        errors.append(str(failure.value))
    assert set(errors) == {"decryption failed"}


def test_signature_verifies_only_with_a_configured_certificate(as2_certs: As2Certs) -> None:
    signature = cms.sign(b"content", as2_certs.partner)
    assert (
        cms.verify_detached(signature, b"content", [as2_certs.stranger.cert, as2_certs.partner.cert]).digest
        == "sha256"
    )
    with pytest.raises(cms.SignatureInvalid):
        cms.verify_detached(
            signature, b"content", [as2_certs.stranger.cert]
        )  # the embedded cert is not trusted


def test_decompression_is_bounded() -> None:
    with pytest.raises(cms.CmsError):
        cms.decompress(cms.compress(b"0" * 100_000), max_bytes=1000)


def test_unknown_layers_twice_are_refused(as2_certs: As2Certs) -> None:
    inner = b"Content-Type: application/pkcs7-mime; smime-type=compressed-data\r\n\r\n" + cms.compress(
        b"Content-Type: application/pkcs7-mime; smime-type=compressed-data\r\n\r\n" + cms.compress(b"x")
    )
    with pytest.raises(UnwrapError):
        unwrap(parse_entity(inner), keys=[], verify_certs=[])
