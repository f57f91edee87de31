"""Health, readiness (database and broker), Prometheus metrics, correlation ids and JSON logs."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.health import MetricsWriter, check_broker
from gateway.archive.blob_store import BlobStore
from gateway.logging import CORRELATION_HEADER, JsonFormatter, configure_logging, correlation_scope
from gateway.settings import Settings
from gateway.store.blobs import record_blob
from gateway.store.enums import Direction, MessageStatus, OutboxStatus, Transport
from gateway.store.models import Message, OutboxEntry
from gateway.store.types import utcnow
from tests.conftest import services_required
from tests.conftest_api import API, ApiKeys, LiveServer, create_partner, sample_profile, settings_with_key


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_healthz_needs_no_key(api_client: TestClient) -> None:
    answer = api_client.get(f"{API}/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_readyz_checks_the_database_and_the_embedded_broker(api_client: TestClient) -> None:
    answer = api_client.get(f"{API}/readyz")
    assert answer.status_code == 200
    checks = answer.json()["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]


def test_readyz_is_503_in_the_error_envelope_when_the_broker_is_down(embedded_settings: Settings) -> None:
    settings = settings_with_key(embedded_settings.data_dir, broker_url=f"redis://127.0.0.1:{_closed_port()}/0")
    app = create_app(settings)
    with TestClient(app) as client:
        answer = client.get(f"{API}/readyz")
    app.state.db.dispose()
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "not_ready" and error["details"]["checks"]["broker"]["ok"] is False
    assert "127.0.0.1" not in answer.text  # no hosts or URLs in the probe's answer


def test_embedded_broker_file_is_probed_when_it_exists(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "broker.sqlite3"
    check_broker(f"sqla+sqlite:///{path}")  # not created yet: the folder is writable
    sqlite3.connect(path).close()
    check_broker(f"sqla+sqlite:///{path}")
    with pytest.raises(FileNotFoundError):
        check_broker(f"sqla+sqlite:///{tmp_path / 'missing' / 'broker.sqlite3'}")


@pytest.mark.integration
def test_redis_broker_is_pinged() -> None:
    url = os.environ.get("EDIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if services_required():
            pytest.fail(f"Redis at {url} is unreachable: {exc}")
        pytest.skip(f"Redis at {url} is unreachable: {exc}")
    check_broker(url)
    with pytest.raises(redis.RedisError):
        check_broker(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.5)


def test_metrics_count_messages_and_queue_latency(api_app: FastAPI, api_client: TestClient,
                                                  api_keys: ApiKeys) -> None:
    partner_id = create_partner(api_app)
    ref = BlobStore(api_app.state.settings.archive_dir()).put_bytes(b"ISA*...")
    with api_app.state.db.unit_of_work() as session:
        record_blob(session, ref)
        for status in (MessageStatus.RECEIVED, MessageStatus.PROCESSED, MessageStatus.PROCESSED):
            session.add(Message(direction=Direction.INBOUND, transport=Transport.AS2, partner_id=partner_id,
                                status=status, content_sha256=ref.sha256, size=ref.size,
                                correlation_id="c1"))
        session.add(OutboxEntry(task_name="inbound.process", status=OutboxStatus.PENDING, task_args={},
                                next_attempt_at=utcnow()))
    answer = api_client.get(f"{API}/metrics", headers=api_keys.headers("auditor"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = answer.text.splitlines()
    assert ('edigate_messages{partner="acme-retail",direction="inbound",transport="as2",status="processed"} 2'
            in lines)
    assert 'edigate_messages_unfinished{direction="inbound"} 1' in lines
    assert 'edigate_queue{task="inbound.process"} 1' in lines
    assert any(line.startswith('edigate_queue_oldest_age_seconds{task="inbound.process"} ') for line in lines)
    assert "# TYPE edigate_ack_expectations gauge" in lines


def test_metric_label_values_are_escaped() -> None:
    writer = MetricsWriter()
    writer.family("m", "gauge", "help", ("a",), [(('x"y\\z\n',), 1.5), ((None,), 2)])
    assert writer.render().splitlines()[2:] == ['m{a="x\\"y\\\\z\\n"} 1.5', 'm{a=""} 2']


def test_a_given_correlation_id_is_echoed_and_a_bad_one_replaced(api_client: TestClient) -> None:
    given = api_client.get(f"{API}/healthz", headers={CORRELATION_HEADER: "order-42"})
    assert given.headers[CORRELATION_HEADER] == "order-42"
    made = api_client.get(f"{API}/healthz", headers={CORRELATION_HEADER: "bad id with spaces"})
    replaced = made.headers[CORRELATION_HEADER]
    assert replaced != "bad id with spaces" and len(replaced) == 32


def test_events_carry_the_request_correlation_id(api_app: FastAPI, api_client: TestClient,
                                                  api_keys: ApiKeys) -> None:
    from sqlalchemy import select

    from gateway.store.models import Event

    api_client.post(f"{API}/partners", json=sample_profile(),
                    headers={**api_keys.headers("onboarding"), CORRELATION_HEADER: "onboard-acme"})
    with api_app.state.db.unit_of_work(read_only=True) as session:
        event = session.scalars(select(Event).where(Event.event_type == "partner.created")).one()
        assert event.correlation_id == "onboard-acme"


def test_access_log_is_json_with_correlation_id_and_no_authorization(
        api_client: TestClient, api_keys: ApiKeys, caplog: pytest.LogCaptureFixture) -> None:
    headers = {**api_keys.headers("auditor"), CORRELATION_HEADER: "trace-1"}
    with caplog.at_level(logging.INFO, logger="edigate.access"):
        api_client.get(f"{API}/partners", headers=headers)
    [record] = [r for r in caplog.records if r.name == "edigate.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["correlation_id"] == "trace-1"
    assert (line["method"], line["path"], line["status"], line["actor"]) == (
        "GET", f"{API}/partners", 200, "key:test-auditor")
    assert api_keys.key("auditor") not in json.dumps(line)


def test_formatter_redacts_secret_fields_and_scrubs_keys_from_messages() -> None:
    message = "calling with Bearer edg_abcdefghijklmnop and whsec_QUJDREVGR0hJSktM"
    record = logging.LogRecord("edigate.test", logging.WARNING, __file__, 1, message, None, None)
    record.password = "hunter2"
    record.headers = {"Authorization": "Bearer x", "Accept": "*/*"}
    with correlation_scope("task-7"):
        line = json.loads(JsonFormatter().format(record))
    assert line["correlation_id"] == "task-7"
    assert line["password"] == "***" and line["headers"] == {"Authorization": "***", "Accept": "*/*"}
    assert "edg_abc" not in line["message"] and "whsec_QUJ" not in line["message"]


def test_configure_logging_writes_json_lines_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO")
        configure_logging("INFO")  # idempotent: one handler
        logging.getLogger("edigate.test").info("hello", extra={"partner": "acme"})
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
        assert [(x["message"], x["partner"]) for x in lines] == [("hello", "acme")]
    finally:
        root.handlers[:], root.level = saved
        logging.getLogger("uvicorn.access").disabled = False


def test_unexpected_errors_answer_500_with_the_correlation_id(api_settings: Settings) -> None:
    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaput")

    app = create_app(api_settings, extra_routers=[router])
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get(f"{API}/boom", headers={CORRELATION_HEADER: "find-me"})
    app.state.db.dispose()
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert (error["code"], error["details"]) == ("internal_error", {"correlation_id": "find-me"})
    assert answer.headers[CORRELATION_HEADER] == "find-me"


@pytest.mark.integration
def test_live_server_answers_probes_and_partner_calls_over_http(live_server: LiveServer,
                                                                 api_keys: ApiKeys) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        assert client.get(f"{API}/healthz").json() == {"status": "ok"}
        assert client.get(f"{API}/readyz").status_code == 200
        created = client.post(f"{API}/partners", json=sample_profile(),
                              headers={**api_keys.headers("onboarding"), CORRELATION_HEADER: "live-1"})
        assert created.status_code == 201 and created.headers[CORRELATION_HEADER] == "live-1"
        assert client.get(f"{API}/partners", headers=api_keys.headers("erp")).status_code == 403
        assert client.get(f"{API}/metrics").status_code == 401
