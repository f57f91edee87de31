"""API fixtures: the app on a fresh database, an in-process client, a live uvicorn server,
API keys per role, and a sample partner.

Register in tests/conftest.py: ``pytest_plugins = ["tests.conftest_store", "tests.conftest_api"]``.

Typical use::

    def test_onboarding_lists_partners(api_client, api_keys):
        answer = api_client.get("/api/v1/partners", headers=api_keys.headers("onboarding"))

    def test_partner_key_posts(api_client, api_keys, acme_partner):
        headers = api_keys.headers("partner", partner_id=acme_partner)

    @pytest.mark.integration
    def test_over_real_http(live_server, api_keys):
        httpx.get(f"{live_server.url}/api/v1/healthz")

``api_app`` runs on the embedded SQLite database of a temporary data dir; ``pg_api_app`` on a
freshly migrated PostgreSQL schema (skips, or fails under CI, without PostgreSQL). Both
fixtures share the same keys/partners helpers, so a test can be written once and
parametrised over ``api_app``/``pg_api_app`` with ``request.getfixturevalue``.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from gateway.api.app import create_app
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.api_keys import create_api_key
from gateway.store.db import Database
from gateway.store.enums import ApiKeyRole

API = "/api/v1"
TEST_SECRET_KEY = "test-secret-key-material-0123456789"

SAMPLE_PROFILE: dict[str, Any] = {
    "id": "acme-retail",
    "name": "ACME Retail",
    "status": "test",
    "x12": {
        "interchange_id": {"qualifier": "ZZ", "id": "ACMERETAIL"},
        "our_id": {"qualifier": "ZZ", "id": "DISTCO"},
        "version": "004010",
        "acknowledgment": {"type": "997", "ta1": "on_request", "expect_within_hours": 24},
    },
    "documents": {"purchase_order": {"direction": "inbound"}, "invoice": {"direction": "outbound"}},
    "mappings": {"uom": {"CS": "CA"}},
    "transports": {
        "sftp": {"remote": {"host": "sftp.acme.example", "username": "distco", "password": "s3cret-pw",
                            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE"}},
        "http": {"outbound_url": "https://acme.example/edi", "headers": {"X-Api-Key": "acme-header-secret"}},
    },
}


def sample_profile(**changes: Any) -> dict[str, Any]:
    """A deep copy of ``SAMPLE_PROFILE`` with top-level keys replaced."""
    profile = copy.deepcopy(SAMPLE_PROFILE)
    profile.update(changes)
    return profile


@dataclass
class ApiKeys:
    """Creates API keys straight in the app's database; ``key()`` caches one key per role/partner."""

    database: Database
    _cache: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def create(self, role: str | ApiKeyRole, *, name: str | None = None,
               partner_id: str | None = None) -> str:
        """A new key (the partner of a partner key must exist)."""
        role = ApiKeyRole(role)
        with self.database.unit_of_work() as session:
            _, key = create_api_key(session, name=name or f"test-{role.value}", role=role,
                                    partner_id=partner_id, actor="test")
        return key

    def key(self, role: str | ApiKeyRole, *, partner_id: str | None = None) -> str:
        """The cached key for this role (and partner), created on first use."""
        cache_key = (ApiKeyRole(role).value, partner_id)
        if cache_key not in self._cache:
            self._cache[cache_key] = self.create(role, partner_id=partner_id)
        return self._cache[cache_key]

    def headers(self, role: str | ApiKeyRole, *, partner_id: str | None = None) -> dict[str, str]:
        """``Authorization: Bearer <key>`` for this role."""
        return {"Authorization": f"Bearer {self.key(role, partner_id=partner_id)}"}


def settings_with_key(data_dir: Any, **overrides: Any) -> Settings:
    """Embedded settings on ``data_dir`` with a fixed secret key."""
    return Settings(data_dir=data_dir, secret_key=SecretStr(TEST_SECRET_KEY), **overrides)


@pytest.fixture
def api_settings(embedded_settings: Settings) -> Settings:
    """Embedded-mode settings on a fresh data dir with a fixed secret key."""
    return settings_with_key(embedded_settings.data_dir)


@pytest.fixture
def api_app(api_settings: Settings) -> Iterator[FastAPI]:
    """The app on a fresh, migrated SQLite database."""
    app = create_app(api_settings)
    yield app
    app.state.db.dispose()


@pytest.fixture
def pg_api_app(pg_database: Database, api_settings: Settings) -> FastAPI:
    """The app on a fresh, migrated PostgreSQL schema (archive and keys under a temp data dir)."""
    return create_app(api_settings, database=pg_database)


@pytest.fixture
def api_client(api_app: FastAPI) -> Iterator[TestClient]:
    """An in-process HTTP client for ``api_app``."""
    with TestClient(api_app) as client:
        yield client


@pytest.fixture
def api_keys(api_app: FastAPI) -> ApiKeys:
    """Keys per role for ``api_app``: ``api_keys.headers("erp")``."""
    return ApiKeys(api_app.state.db)


@pytest.fixture
def secret_box(api_settings: Settings) -> SecretBox:
    """The box the app encrypts secrets with."""
    return SecretBox.from_settings(api_settings)


def create_partner(app: FastAPI, profile: dict[str, Any] | None = None) -> str:
    """Store a partner profile (``SAMPLE_PROFILE`` by default) through the service; its id."""
    from partner_profiles.service import save_profile, validate_profile_data

    with app.state.db.unit_of_work() as session:
        saved = save_profile(session, validate_profile_data(profile or sample_profile()),
                             box=SecretBox.from_settings(app.state.settings), actor="test")
        return saved.partner.id


@pytest.fixture
def acme_partner(api_app: FastAPI) -> str:
    """The sample partner ``acme-retail``, stored in ``api_app``'s database."""
    return create_partner(api_app)


@dataclass(frozen=True)
class LiveServer:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve_in_thread(app: Any) -> LiveServer:
    """Start uvicorn for ``app`` on a free 127.0.0.1 port and wait until it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


def stop_server(live: LiveServer) -> None:
    """Ask uvicorn to exit and wait for its thread."""
    live.server.should_exit = True
    live.thread.join(timeout=10)


@pytest.fixture
def live_server(api_app: FastAPI) -> Iterator[LiveServer]:
    """``api_app`` served by a real uvicorn on 127.0.0.1 (port chosen at run time)."""
    live = serve_in_thread(api_app)
    yield live
    stop_server(live)
