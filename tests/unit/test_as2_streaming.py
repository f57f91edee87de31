"""Streaming AS2 bodies: every layer opened from a file in tiny chunks matches opening it in memory."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from gateway.transports.as2 import cms, spans
from gateway.transports.as2.building import BuildOptions, build_message
from gateway.transports.as2.mime import (
    MimeError,
    Part,
    canonical_span,
    decoded_span,
    split_multipart,
    split_parts,
)
from gateway.transports.as2.spans import Span, Spool
from gateway.transports.as2.unwrap import Unwrapped, top_entity, unwrap
from tests.conftest_as2 import As2Certs, cert_pem, openssl_available

OnDisk = Callable[[bytes], Span]
PAYLOAD = b"ISA*00*          *00~\r\nGS*PO*A*B~\nST*850*0001~\r\n" + bytes(range(256)) * 40


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read 7 bytes at a time and spool to disk past 16 bytes: every border is crossed somewhere."""
    monkeypatch.setattr(spans, "CHUNK", 7)
    monkeypatch.setattr(spans, "SPOOL_MEMORY", 16)


@pytest.fixture
def on_disk(tmp_path: Path) -> Iterator[OnDisk]:
    """A factory for spans backed by a file (closed after the test)."""
    handles: list[IO[bytes]] = []

    def make(data: bytes) -> Span:
        path = tmp_path / f"body-{len(handles)}"
        path.write_bytes(b"HEADERS\r\n\r\n" + data)
        handle = path.open("rb")
        handles.append(handle)
        return Span.of_file(handle, len(b"HEADERS\r\n\r\n"))

    yield make
    for handle in handles:
        handle.close()


@pytest.mark.usefixtures("tiny_chunks")
@pytest.mark.parametrize(
    "body, boundary",
    [
        (b"pre\r\n--b\r\nA: 1\r\n\r\nx\n\r\n--b\r\nB: 2\r\n\r\ny\r\n--b--\r\n", "b"),
        (
            b"--longer-boundary\nA: 1\n\nxx--longer-boundary\n"
            b"--longer-boundary\nB: 2\n\ny\n--longer-boundary--",
            "longer-boundary",
        ),
    ],
)
def test_parts_of_a_file_are_the_same_bytes_as_in_memory(on_disk: OnDisk, body: bytes, boundary: str) -> None:
    parts = [span.read() for span in split_parts(on_disk(body), boundary)]
    assert parts == split_multipart(body, boundary)


@pytest.mark.usefixtures("tiny_chunks")
def test_streamed_base64_decodes_exactly_like_decoding_it_whole(on_disk: OnDisk) -> None:
    encoded = base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
    part = Part({"content-transfer-encoding": "base64"}, on_disk(encoded))
    spool = Spool()
    assert decoded_span(part, spool).read() == PAYLOAD
    for broken in (b"QQ==QUFB", b"QUFBQ", b"QUJD*EFG", b"QQ==\r\n\r\nQQ=="):
        with pytest.raises(MimeError):
            decoded_span(Part({"content-transfer-encoding": "base64"}, on_disk(broken)), Spool())
    spool.close()


@pytest.mark.usefixtures("tiny_chunks")
def test_canonical_line_ends_survive_a_cr_at_a_chunk_border(on_disk: OnDisk) -> None:
    for text in (b"abcdef\r\nghijklm\r\n\nz\r", b"\n\n\r\n\r\r\nabc", b"a" * 6 + b"\r\n" + b"b\n"):
        expected = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert canonical_span(on_disk(text), Spool()).read() == expected


MATRIX = [
    BuildOptions(sign="sha256", encrypt="aes256-cbc"),
    BuildOptions(sign="sha512", encrypt="aes128-gcm", compress=True),
    BuildOptions(sign="sha384", encrypt="3des", compress=True, compress_after_sign=True, pss=True),
    BuildOptions(sign="sha256", encrypt=None, signed_attributes=False),
    BuildOptions(sign=None, encrypt="aes192-cbc", oaep=True),
    BuildOptions(sign=None, encrypt=None, compress=True),
    BuildOptions(sign="sha256", encrypt="aes256-cbc", base64_transfer=True),
    BuildOptions(sign=None, encrypt=None, base64_transfer=True),
]


def _build(certs: As2Certs, options: BuildOptions) -> tuple[dict[str, str], bytes, str]:
    built = build_message(
        PAYLOAD,
        content_type="application/EDI-X12",
        filename="po.edi",
        as2_from="THEM",
        as2_to="US",
        message_id="<m@THEM>",
        options=options,
        signer=certs.partner,
        recipients=[certs.ours.cert],
    )
    return {k.lower(): v for k, v in built.headers.items()}, built.body, built.mic


def _open(certs: As2Certs, headers: dict[str, str], body: bytes | Span, spool_dir: Path | None) -> Unwrapped:
    entity = top_entity(
        headers["content-type"],
        body,
        headers.get("content-transfer-encoding"),
        headers.get("content-disposition"),
    )
    return unwrap(entity, keys=[certs.ours], verify_certs=[certs.partner.cert], spool_dir=spool_dir)


@pytest.mark.parametrize(
    "options", MATRIX, ids=lambda o: f"{o.sign}-{o.encrypt}-{o.compress}-{o.base64_transfer}"
)
def test_every_layer_opens_the_same_from_a_file_in_tiny_chunks(
    as2_certs: As2Certs,
    on_disk: OnDisk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: BuildOptions,
) -> None:
    headers, body, mic = _build(as2_certs, options)
    in_memory = _open(as2_certs, headers, body, None)
    expected = (in_memory.payload_content().read(), in_memory.mic("sha256"), in_memory.layers)
    in_memory.close()
    assert expected[0] == PAYLOAD and expected[1] == mic
    monkeypatch.setattr(spans, "CHUNK", 7)
    monkeypatch.setattr(spans, "SPOOL_MEMORY", 16)
    spool_dir = tmp_path / "spools"
    spool_dir.mkdir()
    streamed = _open(as2_certs, headers, on_disk(body), spool_dir)
    assert (streamed.payload_content().read(), streamed.mic("sha256"), streamed.layers) == expected
    assert streamed.payload.headers["content-type"] == "application/EDI-X12"
    streamed.close()
    assert list(spool_dir.iterdir()) == []  # temporary files are anonymous and gone


@pytest.mark.usefixtures("tiny_chunks")
def test_every_cut_of_an_envelope_fails_as_decryption_failed(as2_certs: As2Certs, on_disk: OnDisk) -> None:
    envelope = cms.encrypt(b"x" * 100, [as2_certs.ours.cert])
    for cut in range(0, len(envelope), 13):
        with pytest.raises(cms.DecryptionFailed):
            cms.decrypt_to(on_disk(envelope[:cut]), [as2_certs.ours], Spool())
    assert cms.decrypt(envelope, [as2_certs.ours]) == b"x" * 100


@pytest.mark.usefixtures("tiny_chunks")
def test_ber_streamed_envelopes_decrypt_piece_by_piece_from_a_file(
    as2_certs: As2Certs, on_disk: OnDisk, tmp_path: Path
) -> None:
    binary = openssl_available()
    (tmp_path / "ours.pem").write_bytes(cert_pem(as2_certs.ours))
    entity = b"Content-Type: application/EDI-X12\r\n\r\n" + PAYLOAD * 3
    for cipher in ("-aes-128-cbc", "-aes-256-gcm"):
        streamed = subprocess.run(
            [binary, "cms", "-encrypt", "-binary", "-stream", "-outform", "DER", cipher, "ours.pem"],
            input=entity,
            capture_output=True,
            check=True,
            cwd=tmp_path,
        ).stdout
        assert streamed[1] == 0x80  # indefinite length: BER, as streaming senders write it
        out = Spool()
        cms.decrypt_to(on_disk(streamed), [as2_certs.ours], out)
        assert out.span().read() == entity
        out.close()


@pytest.mark.usefixtures("tiny_chunks")
def test_streamed_decompression_is_bounded(on_disk: OnDisk) -> None:
    compressed = cms.compress(b"0" * 100_000)
    with pytest.raises(cms.CmsError):
        cms.decompress_to(on_disk(compressed), Spool(), max_bytes=1000)
    out = Spool()
    cms.decompress_to(on_disk(compressed), out, max_bytes=100_000)
    assert out.span().read() == b"0" * 100_000
