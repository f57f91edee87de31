"""Which class sends over which transport; AS2 and SFTP add a line here when they land."""

from __future__ import annotations

import importlib
from typing import Any

from gateway.transports import Transport, TransportError

TRANSPORT_CLASSES: dict[str, str] = {
    "http": "gateway.transports.http:HttpTransport",
    "sftp": "gateway.transports.sftp.sender:SftpTransport",
    "as2": "gateway.transports.as2.sender:As2Transport",
}


class TransportUnavailable(TransportError):
    """No sender is implemented for this transport yet."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no outbound sender for transport {name!r}", retryable=False)


def load_transport(name: str, **options: Any) -> Transport:
    """A new sender for transport ``name`` (``TransportUnavailable`` if there is none)."""
    target = TRANSPORT_CLASSES.get(name)
    if target is None:
        raise TransportUnavailable(name)
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    transport: Transport = cls(**options)
    return transport
