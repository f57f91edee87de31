"""The FastAPI application factory: settings, database, archive and the v1 routers."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request

from gateway.api.errors import install_error_handlers
from gateway.archive.blob_store import BlobStore
from gateway.logging import install_request_logging
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.migrate import open_database

API_PREFIX = "/api/v1"
# Modules exposing ``router``; each is mounted under /api/v1 (AS2 mounts at the root itself).
ROUTER_MODULES: list[str] = [
    "gateway.api.health",
    "gateway.api.schemas_views",
    "partner_profiles.views",
    "gateway.webhooks.views",
    "gateway.messages.views",
    "gateway.inbound.views",
    "gateway.deliveries.views",
    "gateway.transports.sftp.views",
    "gateway.transports.as2.management_views",
    "gateway.outbound.views",
    "gateway.acks.views",
]


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """A configured app; the embedded database is migrated when opened."""
    settings = settings or Settings()
    app = FastAPI(title="edigate", version="1", openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=f"{API_PREFIX}/docs", redoc_url=None)
    app.state.settings = settings
    app.state.db = database or open_database(settings)
    app.state.blobs = BlobStore(settings.archive_dir())
    install_error_handlers(app)
    install_request_logging(app)
    # AS2 partners post to /as2 at the root, where their products expect it.
    app.include_router(importlib.import_module("gateway.transports.as2.views").router)
    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router, prefix=API_PREFIX)
    for router in extra_routers:
        app.include_router(router, prefix=API_PREFIX)
    return app


def secret_box(request: Request) -> SecretBox:
    """The app's box for secrets at rest, made on first use (a dependency for views)."""
    box: SecretBox | None = getattr(request.app.state, "secret_box", None)
    if box is None:
        box = SecretBox.from_settings(request.app.state.settings)
        request.app.state.secret_box = box
    return box
