"""The DER walker reads a SignedData's signers exactly as asn1crypto does, or declines."""

from __future__ import annotations

import pytest
from asn1crypto import cms as asn1_cms

from gateway.transports.as2 import cms, der_signers
from gateway.transports.as2.certificates import self_signed

CONTENT = b"ISA*00*          *00~GS*PO~ST*850*0001~SE*2*0001~GE*1*1~IEA*1*000000001~"


@pytest.fixture(scope="module")
def signer() -> cms.KeyPair:
    return cms.KeyPair(*self_signed("SIGNER"))


def _by_asn1crypto(signature: bytes) -> list[object]:
    info = asn1_cms.ContentInfo.load(signature)
    return [cms._read_signer(s) for s in info["content"]["signer_infos"]]


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("pss", [False, True])
@pytest.mark.parametrize("attributes", [True, False])
def test_the_walker_reads_what_asn1crypto_reads(
    signer: cms.KeyPair, digest: str, pss: bool, attributes: bool
) -> None:
    signature = cms.sign(CONTENT, signer, digest=digest, pss=pss, signed_attributes=attributes)
    raws = der_signers.read_signers(signature, cms._OID_SIGNED_DATA)
    assert [cms._plain_signer(raw) for raw in raws] == _by_asn1crypto(signature)
    assert cms.verify_detached(signature, CONTENT, [signer.cert]).cert == signer.cert


def test_ber_and_other_structures_are_left_to_asn1crypto(signer: cms.KeyPair) -> None:
    signature = cms.sign(CONTENT, signer)
    indefinite = b"\x30\x80" + signature[4:] + b"\x00\x00"  # the outer SEQUENCE as a streamer writes it
    assert signature[:2] == b"\x30\x82"
    for unusual in (indefinite, b"\x30\x03\x06\x01\x00", b"", signature[:40]):
        with pytest.raises(der_signers.Unusual):
            der_signers.read_signers(unusual, cms._OID_SIGNED_DATA)
    assert cms._signers(indefinite) == _by_asn1crypto(indefinite)
    with pytest.raises(cms.CmsError):
        cms._signers(signature[:40])


def test_a_signer_named_differently_is_still_matched_by_name(signer: cms.KeyPair) -> None:
    other = cms.KeyPair(*self_signed("OTHER"))
    (read,) = cms._signers(cms.sign(CONTENT, signer))
    assert cms._names_signer(read.sid, signer.cert) and not cms._names_signer(read.sid, other.cert)
    assert not cms._names_signer(b"\x30\x00", signer.cert)
