"""Pipeline fixtures: a recording ERP (and partner) HTTP server, real Celery workers and beat as
child processes, Redis (shared or private), and a whole running stack on either backend.

Register in tests/conftest.py: ``pytest_plugins = [..., "tests.conftest_pipeline"]``.

``stack`` is parametrised: ``embedded`` (SQLite, local archive, kombu's SQLAlchemy broker — what
``edigate serve`` runs) and ``postgres`` (PostgreSQL schema of its own + Redis db 15). Each stack
has a live uvicorn API, a real ``celery worker`` process and a beat process with 1-second
sweeps, a partner ``acme-retail`` whose acks go to ``stack.partner_http``, and a webhook endpoint
``erp-main`` pointing at ``stack.erp``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.archive.blob_store import BlobStore
from gateway.intake import receive
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import RecordingPublisher
from gateway.processing.tuning import PipelineTuning
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.enums import Transport
from tests.conftest import services_required

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
PIPELINE_SECRET_KEY = "pipeline-test-secret-key-0123456789"
REPO = Path(__file__).resolve().parents[1]
TUNING_ENV = {
    "EDIGATE_SWEEP_INTERVAL_SECONDS": "1",
    "EDIGATE_TASK_LEASE_SECONDS": "4",
    "EDIGATE_WEBHOOK_BACKOFF_SECONDS": "0.3",
    "EDIGATE_WEBHOOK_BACKOFF_MAX_SECONDS": "2",
    "EDIGATE_WEBHOOK_TIMEOUT_SECONDS": "5",
    "EDIGATE_TRANSPORT_TIMEOUT_SECONDS": "5",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --- a recording HTTP server (the ERP, or the partner's endpoint) --------------------------


@dataclass
class Recorded:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class RecordingServer:
    """An HTTP server in a thread that records POSTs; ``status``/``delay`` set how it answers."""

    status: int = 200
    delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self, port: int = 0) -> RecordingServer:
        """Listen on ``port`` (a free one by default)."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # http.server writes the headers and the body separately: with Nagle on, the body
            # waits for the client's delayed ACK (~40 ms a request), which no real ERP server has.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if recorder.delay:
                    time.sleep(recorder.delay)
                with recorder.lock:
                    status = recorder.status
                    if 200 <= status < 300:
                        recorder.requests.append(
                            Recorded(
                                self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                            )
                        )
                    else:
                        recorder.failed.append(time.time())
                answer = b'{"ok": true}' if status < 300 else b'{"error": "down"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self.server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (the port refuses connections: the far side is down)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def restart(self) -> None:
        """Listen again on the same port."""
        self.start(self.port)

    def webhook_ids(self) -> set[str]:
        """Distinct ``webhook-id`` headers received with a 2xx answer."""
        with self.lock:
            return {r.headers.get("webhook-id", "") for r in self.requests}


@pytest.fixture
def pipeline_ctx(
    database: Database, tmp_path: Path, erp_server: RecordingServer, partner_http: RecordingServer
) -> PipelineContext:
    """A context on ``database`` with a recording publisher, the acme-retail partner and an ERP webhook."""
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(PIPELINE_SECRET_KEY))
    context = PipelineContext(
        db=database,
        blobs=BlobStore(tmp_path / "archive"),
        settings=settings,
        box=SecretBox.from_settings(settings),
        publisher=RecordingPublisher(),
        tuning=PipelineTuning(webhook_backoff_seconds=0.05, webhook_retry_seconds=3600),
    )
    setup_partner_and_webhook(database, settings, partner_url=partner_http.url, erp_url=erp_server.url)
    return context


def erp_endpoint_secret(ctx: PipelineContext) -> tuple[uuid.UUID, str]:
    """The id and current signing secret of the "erp-main" endpoint ``pipeline_ctx`` set up."""
    from gateway.webhooks.endpoints import endpoint_secret, find_endpoint_by_name

    with ctx.db.unit_of_work() as session:
        endpoint = find_endpoint_by_name(session, "erp-main")
        assert endpoint is not None
        return endpoint.id, endpoint_secret(session, endpoint, ctx.box)


def receive_http(ctx: PipelineContext, body: bytes, content_type: str = "application/edi-x12") -> uuid.UUID:
    """Take ``body`` in from acme-retail over HTTP, as the inbound endpoint does; its message id."""
    return receive(ctx.db, ctx.blobs, partner_id="acme-retail", transport=Transport.HTTP, body=body,
                   content_type=content_type, publisher=ctx.publisher).message_id


@pytest.fixture
def erp_server() -> Iterator[RecordingServer]:
    """A recording ERP webhook receiver on a free port."""
    server = RecordingServer().start()
    yield server
    server.stop()


@pytest.fixture
def partner_http() -> Iterator[RecordingServer]:
    """A recording partner endpoint (where our 997/999/TA1 are posted)."""
    server = RecordingServer().start()
    yield server
    server.stop()


# --- Redis ---------------------------------------------------------------------------------


def _redis_reachable(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return str(exc)
    return None


@pytest.fixture
def redis_url() -> str:
    """The test Redis database (``EDIGATE_TEST_REDIS_URL``), flushed; skips (fails under CI) if absent."""
    import redis

    url = os.environ.get("EDIGATE_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    problem = _redis_reachable(url)
    if problem:
        message = f"Redis at {url} is unreachable: {problem}"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@dataclass
class PrivateRedis:
    """A redis-server of this test's own, which the test may kill and restart."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL (db 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on the same port and wait for PING."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _redis_reachable(self.url) is None, timeout=10, message="private redis")

    def kill(self) -> None:
        """SIGKILL it: every queued task in it is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A private ``redis-server`` on a free port (skips, or fails under CI, without the binary)."""
    try:
        subprocess.run(["redis-server", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        if services_required():
            pytest.fail(f"redis-server is not installed: {exc}")
        pytest.skip(f"redis-server is not installed: {exc}")
    redis = PrivateRedis(free_port())
    redis.start()
    yield redis
    redis.kill()


# --- Celery worker and beat as child processes ---------------------------------------------


@dataclass
class ChildProcess:
    """A child started in its own process group (so a kill reaches its pool too)."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        """Start it, logging to ``log``."""
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
        )
        _children.append(self)
        handle.close()
        return self

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        """SIGTERM (warm shutdown), then SIGKILL after a few seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def child_env(settings_env: dict[str, str]) -> dict[str, str]:
    """The environment for worker/beat children: no stray EDIGATE_*, plus the stack's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDIGATE_")}
    env.update(TUNING_ENV)
    env.update(settings_env)
    env["PYTHONPATH"] = str(REPO)
    return env


def start_worker(
    env: dict[str, str], log: Path, *, concurrency: int = 2, pool: str = "prefork"
) -> ChildProcess:
    """A real ``celery worker`` child on every queue."""
    argv = [
        sys.executable,
        "-m",
        "gateway.cli.server_commands",
        "worker",
        "--loglevel",
        "INFO",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
    ]
    return ChildProcess(argv, env, log).start()


def start_beat(env: dict[str, str], log: Path) -> ChildProcess:
    """A real ``celery beat`` child running the sweeps every second."""
    argv = [sys.executable, "-m", "gateway.cli.server_commands", "beat", "--loglevel", "INFO"]
    return ChildProcess(argv, env, log).start()


# --- the whole stack -----------------------------------------------------------------------

ACME_X12_ID = "ACMERETAIL"


def pipeline_profile(outbound_url: str, **changes: Any) -> dict[str, Any]:
    """The acme-retail profile with its HTTP endpoint pointing at ``outbound_url``."""
    profile: dict[str, Any] = {
        "id": "acme-retail",
        "name": "ACME Retail",
        "status": "test",
        "x12": {
            "interchange_id": {"qualifier": "ZZ", "id": ACME_X12_ID},
            "our_id": {"qualifier": "ZZ", "id": "DISTCO"},
            "version": "004010",
            "acknowledgment": {"type": "997", "ta1": "on_request"},
        },
        "documents": {"purchase_order": {"direction": "inbound"}},
        "transports": {"http": {"outbound_url": outbound_url}},
        "erp": {"webhook": "erp-main"},
        "json_mapping": {
            "document_type": "purchase_order",
            "fields": {
                "po_number": "order.id",
                "po_date": {"path": "order.created_at", "as": "date"},
                "currency": "order.currency",
            },
            "lines": {
                "path": "order.items",
                "fields": {"quantity": "qty", "unit_price": "price", "item.sku": "sku"},
            },
        },
    }
    profile.update(changes)
    return profile


def setup_partner_and_webhook(
    db: Database,
    settings: Settings,
    *,
    partner_url: str,
    erp_url: str,
    webhook_events: tuple[str, ...] = ("document.received",),
) -> tuple[str, str]:
    """Store acme-retail and the ``erp-main`` endpoint; returns (partner key, webhook secret)."""
    from gateway.secrets import SecretBox
    from gateway.store.api_keys import create_api_key
    from gateway.store.enums import ApiKeyRole
    from gateway.webhooks.endpoints import create_endpoint
    from partner_profiles.service import save_profile, validate_profile_data

    box = SecretBox.from_settings(settings)
    with db.unit_of_work() as session:
        save_profile(session, validate_profile_data(pipeline_profile(partner_url)), box=box, actor="test")
        _, secret = create_endpoint(
            session, url=erp_url, events=list(webhook_events), box=box, actor="test", name="erp-main"
        )
    with db.unit_of_work() as session:
        _, key = create_api_key(session, name="acme", role=ApiKeyRole.PARTNER, partner_id="acme-retail")
    return key, secret


@dataclass
class Stack:
    """A running gateway: API URL, database, settings env, worker, beat, ERP and partner servers."""

    kind: str
    api_url: str
    db: Database
    settings: Settings
    env: dict[str, str]
    erp: RecordingServer
    partner_http: RecordingServer
    partner_key: str
    webhook_secret: str
    tmp: Path
    worker: ChildProcess | None = None
    beat: ChildProcess | None = None
    admin_key: str = ""

    def post_x12(self, body: bytes, *, key: str | None = None) -> httpx.Response:
        """POST raw X12 to /inbound/acme-retail."""
        return httpx.post(
            f"{self.api_url}/api/v1/inbound/acme-retail",
            content=body,
            timeout=30,
            headers={
                "authorization": f"Bearer {key or self.partner_key}",
                "content-type": "application/edi-x12",
            },
        )

    def start_worker(self, **options: Any) -> ChildProcess:
        """Start a worker child (and remember it for teardown)."""
        self.worker = start_worker(self.env, self.tmp / "worker.log", **options)
        return self.worker

    def start_beat(self) -> ChildProcess:
        """Start beat (and remember it)."""
        self.beat = start_beat(self.env, self.tmp / "beat.log")
        return self.beat

    def logs(self) -> str:
        """The worker and beat logs (for failure messages)."""
        return "\n".join(
            p.read_text(errors="replace")[-4000:]
            for p in (self.tmp / "worker.log", self.tmp / "beat.log")
            if p.exists()
        )


def _stack_settings(
    kind: str, tmp: Path, request: pytest.FixtureRequest
) -> tuple[Settings, dict[str, str], Database]:
    data_dir = tmp / "data"
    env = {"EDIGATE_DATA_DIR": str(data_dir), "EDIGATE_SECRET_KEY": PIPELINE_SECRET_KEY}
    if kind == "postgres":
        pg_url: str = request.getfixturevalue("pg_url")
        schema: str = request.getfixturevalue("pg_schema")
        broker: str = request.getfixturevalue("redis_url")
        env.update(
            {"EDIGATE_DATABASE_URL": pg_url, "EDIGATE_DATABASE_SCHEMA": schema, "EDIGATE_BROKER_URL": broker}
        )
        settings = Settings(
            data_dir=data_dir,
            secret_key=SecretStr(PIPELINE_SECRET_KEY),
            database_url=pg_url,
            database_schema=schema,
            broker_url=broker,
        )
        database: Database = request.getfixturevalue("pg_database")
        return settings, env, database
    from gateway.store.migrate import open_database

    settings = Settings(data_dir=data_dir, secret_key=SecretStr(PIPELINE_SECRET_KEY))
    return settings, env, open_database(settings)


def build_stack(
    kind: str,
    tmp: Path,
    request: pytest.FixtureRequest,
    erp: RecordingServer,
    partner: RecordingServer,
    *,
    broker_url: str | None = None,
) -> Iterator[Stack]:
    """A stack with a live API; workers and beat are started by the caller or the fixture."""
    from gateway.api.app import ROUTER_MODULES, create_app
    from gateway.cli.server_commands import prepare_broker
    from gateway.store.api_keys import create_api_key
    from gateway.store.enums import ApiKeyRole
    from tests.conftest_api import serve_in_thread, stop_server

    patch = pytest.MonkeyPatch()
    for name, value in TUNING_ENV.items():  # the in-process API reads the same timings
        patch.setenv(name, value)
    settings, env, db = _stack_settings(kind, tmp, request)
    if broker_url is not None:
        env["EDIGATE_BROKER_URL"] = broker_url
        settings = settings.model_copy(update={"broker_url": broker_url})
    prepare_broker(settings.effective_broker_url())
    key, secret = setup_partner_and_webhook(db, settings, partner_url=partner.url, erp_url=erp.url)
    with db.unit_of_work() as session:
        _, admin_key = create_api_key(session, name="admin", role=ApiKeyRole.ADMIN)
    routers = []
    for module in ("gateway.inbound.views", "gateway.deliveries.views", "gateway.messages.views"):
        if module not in ROUTER_MODULES:
            routers.append(__import__(module, fromlist=["router"]).router)
    app = create_app(settings, database=db, extra_routers=routers)
    live = serve_in_thread(app)
    stack = Stack(
        kind, live.url, db, settings, child_env(env), erp, partner, key, secret, tmp, admin_key=admin_key
    )
    try:
        yield stack
    finally:
        for child in (stack.worker, stack.beat):
            if child is not None:
                child.stop()
        stop_server(live)
        patch.undo()
        if kind == "embedded":
            db.dispose()


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.integration)])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, erp_server: RecordingServer, partner_http: RecordingServer
) -> Iterator[Stack]:
    """A running stack (API + real worker + beat) on the embedded default and on PostgreSQL+Redis."""
    for running in build_stack(request.param, tmp_path, request, erp_server, partner_http):
        running.start_worker()
        running.start_beat()
        yield running


@pytest.fixture
def bare_stack(
    request: pytest.FixtureRequest, tmp_path: Path, erp_server: RecordingServer, partner_http: RecordingServer
) -> Iterator[Stack]:
    """A PostgreSQL+Redis stack with the API only: the test starts worker and beat itself."""
    builder = build_stack("postgres", tmp_path, request, erp_server, partner_http)
    try:
        yield next(builder)
    finally:
        builder.close()


_children: list[ChildProcess] = []


@pytest.fixture(autouse=True, scope="session")
def _no_stray_children() -> Iterator[None]:
    """Whatever a failed test left running is killed at the end of the session."""
    yield
    for child in _children:
        child.kill()
