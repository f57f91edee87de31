"""Connections to partners' SFTP servers: pinned host key (refused on mismatch), key or password."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko

from gateway.transports import TransportError
from gateway.transports.sftp.keys import KeyRejected, fingerprint, load_private_key
from partner_profiles.schema import RemoteSftp

_KEY_TYPES = {
    "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
}


class HostKeyMismatch(TransportError):
    """The server's host key is not the one pinned in the profile: nothing is sent or read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class RemoteAuthFailed(TransportError):
    """The partner's server refused our credentials."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def host_key_matches(pinned: str, key: paramiko.PKey) -> bool:
    """True when ``key`` is the pinned one (``<type> <base64>`` line or ``SHA256:`` fingerprint)."""
    pinned = pinned.strip()
    if pinned.startswith("SHA256:"):
        return pinned.rstrip("=") == fingerprint(key)
    fields = pinned.split()
    if len(fields) < 2:
        return False
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except ValueError:
        return False
    return bool(fields[0] == key.get_name() and blob == key.asbytes())


def _private_key(remote: RemoteSftp, key_dir: Path | None) -> paramiko.PKey | None:
    if remote.private_key is not None:
        text = remote.private_key.get_secret_value()
    elif remote.private_key_ref:
        path = Path(remote.private_key_ref)
        if not path.is_absolute() and key_dir is not None:
            path = key_dir / path
        try:
            text = path.read_text()
        except OSError as exc:
            raise TransportError(f"private_key_ref {remote.private_key_ref}: {exc.strerror}",
                                 retryable=False) from exc
    else:
        return None
    try:
        return load_private_key(text)
    except KeyRejected as exc:
        raise TransportError(f"the profile's SFTP private key is unusable: {exc}", retryable=False) from exc


@contextmanager
def open_remote(remote: RemoteSftp, *, timeout: float, key_dir: Path | None = None) -> Iterator[Any]:
    """An ``SFTPClient`` on the partner's server after checking its pinned host key."""
    pkey = _private_key(remote, key_dir)
    try:
        sock = socket.create_connection((remote.host, remote.port), timeout=timeout)
    except OSError as exc:
        raise TransportError(f"cannot connect to {remote.host}:{remote.port}: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        pinned_type = remote.host_key.split()[0] if not remote.host_key.startswith("SHA256:") else None
        if pinned_type:
            transport.get_security_options().key_types = _KEY_TYPES.get(pinned_type, [pinned_type])
        transport.banner_timeout = transport.auth_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"SSH handshake with {remote.host}:{remote.port} failed: {exc}") from exc
        key = transport.get_remote_server_key()
        if not host_key_matches(remote.host_key, key):
            raise HostKeyMismatch(
                f"host key of {remote.host}:{remote.port} is {key.get_name()} {fingerprint(key)}, "
                "not the one pinned in the profile; refusing to connect")
        try:
            if pkey is not None:
                transport.auth_publickey(remote.username, pkey)
            elif remote.password is not None:
                transport.auth_password(remote.username, remote.password.get_secret_value())
            else:
                raise RemoteAuthFailed("the profile has no password or private key for the partner's server")
        except paramiko.AuthenticationException as exc:
            where = f"{remote.host}:{remote.port}"
            raise RemoteAuthFailed(f"{where} refused user {remote.username}: {exc}") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"authentication with {remote.host}:{remote.port} failed: {exc}") from exc
        client = paramiko.SFTPClient.from_transport(transport)
        client.get_channel().settimeout(timeout)
        try:
            yield client
        finally:
            client.close()
    finally:
        transport.close()


def remote_path(directory: str, name: str) -> str:
    """``directory/name`` on the remote side (POSIX separators, no doubled slash)."""
    return f"{directory.rstrip('/')}/{name}" if directory else name
