"""Outbound over SFTP: into a hosted partner's ``outbound/`` folder, or up to the partner's server.

Both are atomic for the reader: a hosted file is written under ``staging/`` and hard-linked into
``outbound/`` (never visible half-written); a remote upload goes to ``NAME.part``, is size-checked
and renamed. When the profile has a remote server we push there; otherwise we drop the file
into the hosted mailbox. Acknowledgments (997/999/TA1) for SFTP partners take the same path.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paramiko

from gateway.settings import Settings
from gateway.transports import NotConfigured, OutboundMessage, Receipt, TransportError
from gateway.transports.sftp.client import open_remote, remote_path
from gateway.transports.sftp.config import SftpTuning
from gateway.transports.sftp.mailbox import hosted_remote_id
from gateway.transports.sftp.paths import OUTBOUND, MailboxLayout
from partner_profiles.schema import HostedSftp, PartnerProfile, RemoteSftp

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbound_name(message: OutboundMessage) -> str:
    """A safe file name for the message (its own filename if it has one)."""
    name = Path(message.filename).name if message.filename else f"{message.message_id}.x12"
    name = _UNSAFE.sub("_", name).strip("._") or f"{message.message_id}.x12"
    return name[:200]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SftpTransport:
    """The ``"sftp"`` sender for ``gateway.transports.registry``."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        settings: Settings | None = None,
        tuning: SftpTuning | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.settings = settings or Settings()
        self.tuning = tuning or SftpTuning()
        self.layout = MailboxLayout.from_settings(self.settings)
        self._sleep = sleep

    def send(self, message: OutboundMessage, payload: bytes, profile: PartnerProfile) -> Receipt:
        """Push to the partner's server if it has one, else drop into its hosted ``outbound/``."""
        sftp = profile.transports.sftp
        if sftp is not None and sftp.remote is not None:
            return self.push_remote(message, payload, sftp.remote)
        if sftp is not None and sftp.hosted is not None:
            return self.drop_hosted(message, payload, sftp.hosted)
        raise NotConfigured(f"partner {profile.id} has no transports.sftp.hosted or .remote")

    def drop_hosted(self, message: OutboundMessage, payload: bytes, hosted: HostedSftp) -> Receipt:
        """Write into the hosted ``outbound/`` atomically; the same bytes again are a no-op."""
        username = hosted.username
        try:
            self.layout.ensure(username)
        except OSError as exc:
            raise TransportError(f"cannot prepare the mailbox of {username}: {exc}") from exc
        name = outbound_name(message)
        folder = self.layout.folder(username, OUTBOUND)
        staged = self.layout.staging(username) / f"{uuid.uuid4().hex}.tmp"
        try:
            with staged.open("wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            for candidate in (name, f"{Path(name).stem}.{message.message_id[:8]}{Path(name).suffix}"):
                target = folder / candidate
                try:
                    os.link(staged, target)
                except FileExistsError:
                    if target.is_file() and not target.is_symlink() and target.read_bytes() == payload:
                        break  # sent before (a retry after a crash): nothing to do
                    continue
                _fsync_dir(folder)
                break
            else:
                raise TransportError(f"outbound/{name} exists with other content", retryable=False)
        except OSError as exc:
            raise TransportError(f"writing outbound/{name} for {username} failed: {exc}") from exc
        finally:
            staged.unlink(missing_ok=True)
        return Receipt(status_code=None, remote_id=hosted_remote_id(username, candidate))

    def push_remote(self, message: OutboundMessage, payload: bytes, remote: RemoteSftp) -> Receipt:
        """Upload as ``NAME.part``, check the size, rename; retried with backoff on connection errors."""
        name = outbound_name(message)
        final = remote_path(remote.outbound_dir, name)
        temporary = final + ".part"
        last: TransportError | None = None
        for attempt in range(self.tuning.push_attempts):
            if attempt:
                self._sleep(self.tuning.push_backoff_seconds * 2 ** (attempt - 1))
            try:
                with open_remote(remote, timeout=self.timeout, key_dir=self.layout.root / "keys") as client:
                    _upload(client, payload, temporary, final)
                return Receipt(status_code=None, remote_id=f"sftp://{remote.host}:{remote.port}{_abs(final)}")
            except TransportError as exc:
                if not exc.retryable:
                    raise
                last = exc
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last = TransportError(f"upload to {remote.host}:{remote.port}{_abs(final)} failed: {exc}")
        assert last is not None
        raise last


def _abs(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _upload(client: paramiko.SFTPClient, payload: bytes, temporary: str, final: str) -> None:
    attrs = client.putfo(io.BytesIO(payload), temporary, file_size=len(payload), confirm=True)
    if attrs.st_size != len(payload):
        raise TransportError(f"{temporary} has {attrs.st_size} bytes after upload, expected {len(payload)}")
    try:
        client.posix_rename(temporary, final)
    except OSError:
        with contextlib.suppress(OSError):
            client.remove(final)
        client.rename(temporary, final)
    size = client.stat(final).st_size
    if size != len(payload):
        raise TransportError(f"{final} has {size} bytes after rename, expected {len(payload)}")
