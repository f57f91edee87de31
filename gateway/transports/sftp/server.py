"""The hosted SFTP server (paramiko): accepts partners, authenticates them, runs their mailbox.

One thread per connection; a maintenance thread re-ingests whatever the spool holds (crash
recovery) and removes abandoned partial uploads; a doorbell thread publishes what was received.
Host keys come from the database (made once, shared by every process), so partners pin them
once for every replica.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paramiko

from gateway.archive.blob_store import BlobStore
from gateway.processing.publisher import CeleryPublisher, Publisher
from gateway.runtime import settle_heap
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.transports.sftp._ssh import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from gateway.transports.sftp.accounts import Account
from gateway.transports.sftp.audit import record_event
from gateway.transports.sftp.config import SftpTuning
from gateway.transports.sftp.ingest import SpoolIngestor
from gateway.transports.sftp.keys import HostKeyInfo, ensure_host_keys, fingerprint, public_line
from gateway.transports.sftp.login import LoginService
from gateway.transports.sftp.mailbox import Connection, MailboxSftp, MailboxSftpServer, outbound_message_id
from gateway.transports.sftp.paths import MailboxLayout

log = logging.getLogger("edigate.sftp.server")
SERVER_VERSION = "SSH-2.0-edigate"


class SshServer(paramiko.ServerInterface):  # type: ignore[misc]
    """paramiko's per-connection hooks: authentication and which channels are allowed."""

    def __init__(self, conn: Connection, login: LoginService, layout: MailboxLayout) -> None:
        self.conn = conn
        self.login = login
        self.layout = layout
        self.password_failures = 0
        self.session_open = False

    def get_allowed_auths(self, username: str) -> str:
        """Passwords and public keys."""
        return "publickey,password"

    def check_auth_password(self, username: str, password: str) -> int:
        """A password login (slow hash, lockout)."""
        result = self.login.check_password(username, password, self.conn.address)
        if result.ok:
            self._accept(result.account, "password", None)
            return AUTH_SUCCESSFUL
        self.password_failures += 1
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        """A public key login (paramiko verifies the signature before the final call)."""
        result = self.login.check_public_key(username, key, self.conn.address)
        if result.ok:
            self._accept(result.account, "publickey", key)
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def _accept(self, account: Account | None, method: str, key: paramiko.PKey | None) -> None:
        self.conn.account, self.conn.method, self.conn.key = account, method, key

    def check_channel_request(self, kind: str, chanid: int) -> int:
        """Only session channels (for the sftp subsystem); the first one opens the mailbox session."""
        account = self.conn.account
        if kind != "session" or account is None:
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        # Done here, not after accept(): the client may start the subsystem and send requests
        # as soon as the channel is open, and those must find the folders and a counted session.
        if not self.session_open:
            self.layout.ensure(account.username)
            if not self.login.logged_in(account, self.conn.address, self.conn.method, self.conn.key):
                return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            self.session_open = True
            self.conn.touch()
        return OPEN_SUCCEEDED


class HostedSftpServer:
    """Listens on the SFTP port and serves every partner's mailbox."""

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        tuning: SftpTuning | None = None,
        publisher: Publisher | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.tuning = tuning or SftpTuning()
        self._own_db = db is None
        self.db = db or Database.from_settings(settings)
        self.box = SecretBox.from_settings(settings)
        self.layout = MailboxLayout.from_settings(settings)
        self.blobs = BlobStore(settings.archive_dir())
        self.publisher = publisher if publisher is not None else CeleryPublisher(settings)
        self.max_file_bytes = self.tuning.max_file_bytes or settings.max_body_bytes
        self.login = LoginService(self.db, self.box, self.tuning)
        # Only the doorbell's thread publishes: a close is answered without waiting for the broker.
        self.ingestor = SpoolIngestor(self.db, self.blobs, self.layout, publisher=self.publisher,
                                      max_bytes=self.max_file_bytes, background_publish=True,
                                      publish_interval=self.tuning.publish_interval_seconds,
                                      group_commit=True)
        self.host = host or settings.host
        self.port = settings.sftp_port if port is None else port
        self.host_keys: list[paramiko.PKey] = []
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.tuning.max_connections)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load host keys, recover the spool, bind the port and start accepting."""
        self.host_keys = ensure_host_keys(self.db, self.box)
        self.login.refresh_accounts()
        self.ingestor.recover()
        sock = socket.create_server((self.host, self.port), reuse_port=False, backlog=128)
        sock.settimeout(0.5)
        self._socket = sock
        self.port = sock.getsockname()[1]
        loops = ((self._accept_loop, "sftp-accept"), (self._maintenance_loop, "sftp-maintenance"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def host_key_infos(self) -> list[HostKeyInfo]:
        """The loaded host keys' public lines and fingerprints."""
        return [HostKeyInfo(key.get_name(), public_line(key), fingerprint(key)) for key in self.host_keys]

    def stop(self) -> None:
        """Stop accepting, close every connection, wait for the threads."""
        self._stop.set()
        if self._socket is not None:
            self._socket.close()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.ingestor.close()
        if self._own_db:
            self.db.dispose()

    def serve(self, stop_event: threading.Event) -> None:
        """Run until ``stop_event`` is set."""
        self.start()
        try:
            stop_event.wait()
        finally:
            self.stop()

    # --- threads --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                sock, address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                sock.close()
                continue
            peer = f"{address[0]}:{address[1]}"
            thread = threading.Thread(target=self._serve_connection, args=(sock, peer), name=f"sftp-{peer}",
                                      daemon=True)
            thread.start()

    def _maintenance_loop(self) -> None:
        while not self._stop.wait(self.tuning.recovery_interval_seconds):
            try:
                self.ingestor.recover()
                self._remove_stale_uploads()
            except Exception:
                log.exception("SFTP maintenance failed; will retry")

    def _remove_stale_uploads(self) -> None:
        cutoff = time.time() - self.tuning.stale_upload_seconds
        incoming = self.layout.root / "incoming"
        if not incoming.is_dir():
            return
        for path in incoming.glob("*/*.upload"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue

    def _serve_connection(self, sock: socket.socket, address: str) -> None:
        try:
            self._run_session(sock, address)
        except Exception:
            log.exception("SFTP connection from %s failed", address)
        finally:
            self._slots.release()

    def _run_session(self, sock: socket.socket, address: str) -> None:
        conn = Connection(self, address)
        transport = paramiko.Transport(sock)
        transport.local_version = SERVER_VERSION
        for key in self.host_keys:
            transport.add_server_key(key)
        transport.set_subsystem_handler("sftp", MailboxSftpServer, MailboxSftp)
        interface = SshServer(conn, self.login, self.layout)
        with self._lock:
            self._transports.add(transport)
        try:
            try:
                transport.start_server(server=interface)
            except (paramiko.SSHException, EOFError, OSError):
                return
            channel = transport.accept(self.tuning.login_grace_seconds)
            account = conn.account
            if interface.session_open and account is not None:
                reason = self._watch(transport, conn) if channel is not None else "no_channel"
                self.login.logged_out(account, address, reason, files_received=conn.files_received)
            elif account is None and interface.password_failures == 0 and transport.get_username():
                record_event(self.db, "sftp.login_failed", username=transport.get_username(),
                             partner_id=None, address=address, reason="no_valid_credentials")
        finally:
            transport.close()
            with self._lock:
                self._transports.discard(transport)

    def _watch(self, transport: paramiko.Transport, conn: Connection) -> str:
        idle = self.tuning.idle_timeout_seconds
        tick = min(1.0, idle / 4)
        while transport.is_active():
            if self._stop.is_set():
                return "server_stopping"
            if time.monotonic() - conn.last_activity > idle:
                transport.close()
                return "idle_timeout"
            transport.join(tick)  # returns as soon as the connection ends
        return "closed"

    def outbound_message_id(self, partner_id: str, username: str, name: str) -> uuid.UUID | None:
        """The message behind a file of an ``outbound/`` folder (for audit links)."""
        try:
            return outbound_message_id(self.db, partner_id, username, name)
        except Exception:
            log.exception("lookup of %s/outbound/%s failed", username, name)
            return None


def run_sftp_server(
    settings: Settings,
    stop_event: threading.Event,
    *,
    tuning: SftpTuning | None = None,
    on_ready: Callable[[HostedSftpServer], None] | None = None,
) -> None:
    """Serve SFTP on ``settings.host:settings.sftp_port`` until ``stop_event`` is set (``edigate sftp``)."""
    server = HostedSftpServer(settings, tuning=tuning)
    server.start()
    settle_heap()
    try:
        if on_ready is not None:
            on_ready(server)
        stop_event.wait()
    finally:
        server.stop()


def describe(server: HostedSftpServer) -> list[str]:
    """Lines to print at start: where it listens and the host key fingerprints."""
    lines = [f"edigate sftp listening on {server.host}:{server.port} (data in {_short(server.layout.root)})"]
    lines += [f"  host key {info.algorithm} {info.fingerprint}" for info in server.host_key_infos()]
    return lines


def _short(path: Path) -> str:
    return str(path)
