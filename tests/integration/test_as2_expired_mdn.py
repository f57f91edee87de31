"""A partner's ``allow_expired_certificates`` covers its signed MDNs as it covers its messages.

Mendelson's test installations sign MDNs with long-expired certificates; a partner allowed an
expired certificate for its messages must not have the MDNs it signs with it refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from gateway.transports import TransportError
from gateway.transports.as2.certificates import add_partner_certificate
from gateway.transports.as2.mdn import Disposition, build_mdn
from gateway.transports.as2.models import As2Exchange
from gateway.transports.as2.partners import As2Options, save_options
from gateway.transports.as2.sender import As2Transport
from partner_profiles.schema import PartnerProfile
from tests.conftest_api import LiveServer
from tests.conftest_as2 import OUR_AS2_ID, PARTNER_AS2_ID, As2Setup, as2_profile, make_key_pair
from tests.integration.test_as2_send import PAYLOAD, _outbound

pytestmark = pytest.mark.integration


def test_a_sync_mdn_signed_with_an_expired_certificate_verifies_only_when_the_partner_allows_it(
    as2_app: As2Setup,
) -> None:
    expired = make_key_pair("ACMEAS2 2016", days=365, not_before=datetime.now(UTC) - timedelta(days=3000))

    def partner(request: httpx.Request) -> httpx.Response:
        mdn = build_mdn(
            our_as2_id=PARTNER_AS2_ID,
            partner_as2_id=OUR_AS2_ID,
            original_message_id=request.headers["message-id"],
            disposition=Disposition(),
            mic=None,
            signer=expired,
            sign_digest="sha1",
        )
        return httpx.Response(200, headers=mdn.headers, content=mdn.body)

    transport = As2Transport(
        settings=as2_app.app.state.settings,
        database=as2_app.app.state.db,
        client=httpx.Client(transport=httpx.MockTransport(partner)),
    )
    profile = PartnerProfile.model_validate(
        as2_profile("http://partner.example/as2", expired, encrypt="none")
    )
    with pytest.raises(TransportError) as refused:
        transport.send(_outbound(as2_app), PAYLOAD, profile)
    assert "outside its validity period" in str(refused.value)

    with as2_app.app.state.db.unit_of_work() as session:
        save_options(session, as2_app.partner_id, As2Options(allow_expired_certificates=True))
    receipt = transport.send(_outbound(as2_app), PAYLOAD, profile)
    assert receipt.headers["as2-disposition"] == "processed"


def test_an_async_mdn_signed_with_an_expired_certificate_verifies_only_when_the_partner_allows_it(
    as2_app: As2Setup, as2_server: LiveServer
) -> None:
    expired = make_key_pair("ACMEAS2 2016", days=365, not_before=datetime.now(UTC) - timedelta(days=3000))
    sent: list[str] = []

    def partner(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["message-id"])
        return httpx.Response(200)

    transport = As2Transport(
        settings=as2_app.app.state.settings,
        database=as2_app.app.state.db,
        client=httpx.Client(transport=httpx.MockTransport(partner)),
    )
    profile = PartnerProfile.model_validate(
        as2_profile(
            "http://partner.example/as2",
            expired,
            encrypt="none",
            mdn={"mode": "async", "signed": True, "async_url": f"{as2_server.url}/as2/mdn"},
        )
    )
    transport.send(_outbound(as2_app), PAYLOAD, profile)
    with as2_app.app.state.db.unit_of_work() as session:  # what the async MDN endpoint verifies with
        add_partner_certificate(session, as2_app.partner_id, expired.cert, usage="verify", actor="test")
    mdn = build_mdn(
        our_as2_id=PARTNER_AS2_ID,
        partner_as2_id=OUR_AS2_ID,
        original_message_id=sent[0],
        disposition=Disposition(),
        mic=None,
        signer=expired,
    )
    refused = httpx.post(f"{as2_server.url}/as2/mdn", content=mdn.body, headers=mdn.headers)
    assert refused.status_code == 400 and "outside its validity period" in refused.text

    with as2_app.app.state.db.unit_of_work() as session:
        save_options(session, as2_app.partner_id, As2Options(allow_expired_certificates=True))
    answer = httpx.post(f"{as2_server.url}/as2/mdn", content=mdn.body, headers=mdn.headers)
    assert answer.status_code == 200, answer.text
    with as2_app.app.state.db.sessions() as session:
        exchange = session.scalars(select(As2Exchange)).one()
        assert (exchange.status, exchange.mdn_status) == ("delivered", "received")
