"""Outbound fixtures: a partner that takes 855/856/810, sample canonical documents, an app with the
outbound and acks routers, a recording publisher, and 997/TA1 builders playing the partner.

Register in tests/conftest.py: ``pytest_plugins = [..., "tests.conftest_outbound"]``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from gateway.api.app import ROUTER_MODULES, create_app
from gateway.processing.publisher import RecordingPublisher
from gateway.settings import Settings
from tests.conftest import FIXTURES
from tests.conftest_api import ApiKeys, create_partner
from translators.canonical import to_dict
from translators.pipeline import translate

OUTBOUND_ROUTER_MODULES = ("gateway.outbound.views", "gateway.acks.views", "gateway.messages.views")
_FIXTURE_BY_TYPE = {
    "purchase_order": "po_004010.x12",
    "order_acknowledgment": "poack_004010.x12",
    "ship_notice": "asn_004010.x12",
    "invoice": "invoice_004010.x12",
}


def outbound_profile(
    partner_id: str = "acme-retail",
    *,
    interchange_id: str = "ACMERETAIL",
    outbound_url: str = "https://acme.example/edi",
    **changes: Any,
) -> dict[str, Any]:
    """A partner that sends 850s and takes 855/856/810 over HTTP, acknowledging with 997s in 24 h."""
    profile: dict[str, Any] = {
        "id": partner_id,
        "name": partner_id.upper(),
        "status": "test",
        "x12": {
            "interchange_id": {"qualifier": "ZZ", "id": interchange_id},
            "our_id": {"qualifier": "ZZ", "id": "DISTCO"},
            "version": "004010",
            "acknowledgment": {"type": "997", "ta1": "on_request", "expect_within_hours": 24},
        },
        "documents": {
            "purchase_order": {"direction": "inbound"},
            "order_acknowledgment": {"direction": "outbound"},
            "ship_notice": {"direction": "outbound"},
            "invoice": {"direction": "outbound"},
        },
        "transports": {"http": {"outbound_url": outbound_url}},
        "erp": {"webhook": "erp-main"},
    }
    profile.update(copy.deepcopy(changes))
    return profile


def sample_document(document_type: str) -> dict[str, Any]:
    """A canonical document of this type (read from the X12 fixtures), as the ERP would post it."""
    report = translate((FIXTURES / _FIXTURE_BY_TYPE[document_type]).read_bytes())
    document = report.interchanges[0][1][0].document
    assert document is not None
    data: dict[str, Any] = to_dict(document)  # type: ignore[arg-type]
    return data


def outbound_routers() -> list[APIRouter]:
    """The routers this area adds that the lead has not registered in ROUTER_MODULES yet."""
    return [
        __import__(m, fromlist=["router"]).router for m in OUTBOUND_ROUTER_MODULES if m not in ROUTER_MODULES
    ]


@pytest.fixture
def outbound_app(api_settings: Settings) -> Iterator[FastAPI]:
    """The app (embedded SQLite) with the outbound and acks routes and a recording publisher."""
    app = create_app(api_settings, extra_routers=outbound_routers())
    app.state.publisher = RecordingPublisher()
    yield app
    app.state.db.dispose()


@pytest.fixture
def outbound_client(outbound_app: FastAPI) -> Iterator[TestClient]:
    """An in-process client for ``outbound_app``."""
    with TestClient(outbound_app) as client:
        yield client


@pytest.fixture
def outbound_keys(outbound_app: FastAPI) -> ApiKeys:
    """API keys per role for ``outbound_app``."""
    return ApiKeys(outbound_app.state.db)


@pytest.fixture
def outbound_partner(outbound_app: FastAPI) -> str:
    """``acme-retail`` taking 855/856/810 outbound, stored in ``outbound_app``'s database."""
    return create_partner(outbound_app, outbound_profile())


def envelope_numbers(x12: str) -> dict[str, Any]:
    """ISA13, GS06s and ST02s (with their set ids) of an interchange we generated."""
    element, terminator = x12[3], x12[105]
    found: dict[str, Any] = {"isa13": "", "groups": []}
    for raw in x12.split(terminator):
        fields = raw.strip().split(element)
        if fields[0] == "ISA":
            found["isa13"] = fields[13]
        elif fields[0] == "GS":
            found["groups"].append({"functional_id": fields[1], "gs06": fields[6], "sets": []})
        elif fields[0] == "ST":
            found["groups"][-1]["sets"].append((fields[1], fields[2]))
    return found


def functional_ack(
    sent_x12: str,
    *,
    sender: str = "ACMERETAIL",
    set_status: str = "A",
    isa13: int | None = None,
    usage: str = "T",
    gs06: str | None = None,
) -> bytes:
    """The partner's 997 for the first group of ``sent_x12`` (every set ``set_status``)."""
    numbers = envelope_numbers(sent_x12)
    group = numbers["groups"][0]
    control = isa13 if isa13 is not None else random.randint(100_000, 999_999_999)
    now = datetime(2026, 11, 22, 9, 30)
    body = [f"AK1*{group['functional_id']}*{gs06 or group['gs06']}"]
    for set_id, st02 in group["sets"]:
        body.append(f"AK2*{set_id}*{st02}")
        body.append(f"AK5*{set_status}" + ("*5" if set_status == "R" else ""))
    count = len(group["sets"])
    accepted = 0 if set_status == "R" else count
    body.append(f"AK9*{'R' if set_status == 'R' else 'A'}*{count}*{count}*{accepted}")
    segments = ["ST*997*0001", *body, f"SE*{len(body) + 2}*0001"]
    isa = (
        f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{'DISTCO':<15}*{now:%y%m%d}*{now:%H%M}*U*00401*"
        f"{control:09d}*0*{usage}*>"
    )
    lines = [
        isa,
        f"GS*FA*{sender}*DISTCO*{now:%Y%m%d}*{now:%H%M}*{control}*X*004010",
        *segments,
        f"GE*1*{control}",
        f"IEA*1*{control:09d}",
    ]
    return ("~\n".join(lines) + "~\n").encode()


ACK_EVENTS = ["document.received", "ack.accepted", "ack.rejected", "ack.overdue", "document.sent"]


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "embedded"])
def outbound_stack(
    request: pytest.FixtureRequest,
    tmp_path: Any,
    erp_server: Any,
    partner_http: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """A running stack (API with the outbound/acks routes, real worker and beat) where acme-retail takes
    855s over HTTP at ``partner_http`` and ``slow-retail`` (same endpoint) owes its 997 within 4 s."""
    from gateway.api import app as app_module
    from gateway.secrets import SecretBox
    from gateway.webhooks.endpoints import EndpointChanges, list_endpoints, update_endpoint
    from partner_profiles.service import save_profile, validate_profile_data
    from tests.conftest_pipeline import build_stack

    modules = [
        *app_module.ROUTER_MODULES,
        *(m for m in OUTBOUND_ROUTER_MODULES if m not in app_module.ROUTER_MODULES),
    ]
    monkeypatch.setattr(app_module, "ROUTER_MODULES", modules)
    for running in build_stack(request.param, tmp_path, request, erp_server, partner_http):
        box = SecretBox.from_settings(running.settings)
        slow = outbound_profile("slow-retail", interchange_id="SLOWRETAIL", outbound_url=partner_http.url)
        slow["x12"]["acknowledgment"]["expect_within_hours"] = 4 / 3600
        with running.db.unit_of_work() as session:
            for profile in (outbound_profile(outbound_url=partner_http.url), slow):
                save_profile(session, validate_profile_data(profile), box=box, actor="test")
            for endpoint in list_endpoints(session)[0]:
                update_endpoint(
                    session, endpoint.id, EndpointChanges(events=ACK_EVENTS), box=box, actor="test"
                )
        running.start_worker()
        running.start_beat()
        yield running
