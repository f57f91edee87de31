"""A large AS2 message is streamed (archive, decrypt, verify, payload) and never held in memory whole."""

from __future__ import annotations

import hashlib
import tracemalloc
import uuid

import httpx
import pytest
from sqlalchemy import select

from gateway.store.models import Message
from gateway.transports.as2.algorithms import same_mic
from gateway.transports.as2.building import BuildOptions, build_message
from gateway.transports.as2.mdn import parse_mdn
from gateway.transports.as2.models import As2Exchange
from tests.conftest_api import LiveServer
from tests.conftest_as2 import OUR_AS2_ID, PARTNER_AS2_ID, As2Setup

pytestmark = pytest.mark.integration

LINE = b"PO1*1*10*EA*9.99**UP*012345678901~\r\n"


@pytest.mark.parametrize("compress", [False, True], ids=["signed-encrypted", "compressed-signed-encrypted"])
def test_a_large_message_is_received_without_ever_being_held_whole_in_memory(
    as2_server: LiveServer, as2_app: As2Setup, compress: bool
) -> None:
    payload = LINE * (16 * 1024 * 1024 // len(LINE))
    built = build_message(
        payload,
        content_type="application/EDI-X12",
        filename="large.edi",
        as2_from=PARTNER_AS2_ID,
        as2_to=OUR_AS2_ID,
        message_id=f"<{uuid.uuid4().hex}@{PARTNER_AS2_ID}>",
        options=BuildOptions(sign="sha256", encrypt="aes256-cbc", compress=compress),
        signer=as2_app.certs.partner,
        recipients=[as2_app.certs.ours.cert],
    )
    chunks = (built.body[i : i + 65536] for i in range(0, len(built.body), 65536))  # sent chunked
    tracemalloc.start()
    try:
        response = httpx.post(f"{as2_server.url}/as2", content=chunks, headers=built.headers, timeout=120)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    mdn = parse_mdn(
        response.headers["content-type"], response.content, partner_certs=[as2_app.certs.ours.cert]
    )
    assert mdn.signed and str(mdn.disposition) == "processed"
    assert mdn.mic is not None and same_mic(mdn.mic, built.mic)
    # Holding the body, its plaintext or the payload even once would cost 16 MB.
    assert peak < len(payload) // 2, f"peak Python allocations {peak / 2**20:.1f} MB"
    with as2_app.app.state.db.unit_of_work(read_only=True) as session:
        stored = session.scalars(select(Message.content_sha256)).one()
        raw = session.scalars(select(As2Exchange.raw_sha256)).one()
    assert stored == hashlib.sha256(payload).hexdigest()
    with as2_app.app.state.blobs.open(raw) as archived:  # the raw request, headers then body
        archived.seek(-len(built.body), 2)
        assert archived.read() == built.body
