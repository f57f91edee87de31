"""Brokers without Redis: ``sqla+sqlite:///…`` (the embedded default) runs on
:mod:`gateway.processing.sqlite_broker`; any other ``sqla+…`` URL on kombu's SQLAlchemy
transport with a configurable polling interval.

kombu hands every transport option to ``create_engine``, so the virtual transport's
``polling_interval`` (1 s by default: a second of latency per hop) cannot be set for it. This
subclass keeps that option away from the engine; :func:`register` makes ``edigate-sqla+…``
URLs use it.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as _Channel
from kombu.transport.sqlalchemy import Transport as _Transport

SCHEME = "edigate-sqla"
_ENGINE_IGNORES = ("polling_interval",)


class Channel(_Channel):
    """A channel whose engine is created without the polling options."""

    def _engine_from_config(self) -> Any:
        client = self.connection.client
        saved = {k: client.transport_options.pop(k) for k in _ENGINE_IGNORES if k in client.transport_options}
        try:
            engine = super()._engine_from_config()  # type: ignore[no-untyped-call]
        finally:
            client.transport_options.update(saved)
        return engine


class Transport(_Transport):
    """The SQLAlchemy transport using :class:`Channel`."""

    Channel = Channel


def register() -> None:
    """Make ``edigate-sqla+<sqlalchemy url>`` resolve to this transport."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")


def broker_url(url: str) -> str:
    """``sqla+sqlite:///…`` to the SQLite transport, other ``sqla+…`` to this one, the rest unchanged."""
    if url.startswith("sqla+sqlite:///"):
        from gateway.processing import sqlite_broker

        sqlite_broker.register()
        return f"{sqlite_broker.SCHEME}+{url[len('sqla+'):]}"
    if url.startswith("sqla+"):
        register()
        return f"{SCHEME}+{url[len('sqla+'):]}"
    return url
