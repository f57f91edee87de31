"""SFTP fixtures: a hosted server with a partner account, OpenSSH's ``sftp`` client in batch mode,
client keys, and a private OpenSSH ``sshd`` playing a partner's server.

Register in tests/conftest.py: ``pytest_plugins = [..., "tests.conftest_sftp"]``.

OpenSSH binaries (Debian ``openssh-client`` and ``openssh-server``) are required: without them
the tests skip, except under ``CI``/``EDIGATE_REQUIRE_SERVICES`` where they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gateway.processing.publisher import RecordingPublisher
from gateway.settings import Settings
from gateway.store.db import Database
from tests.conftest import services_required

SFTP_SECRET_KEY = "sftp-test-secret-key-0123456789abcdef"
PARTNER_ID = "acme-retail"
USERNAME = "acme"
PASSWORD = "correct horse battery staple"
SSHD = "/usr/sbin/sshd"


def need_binary(path: str) -> str:
    """The binary's path; skips (fails under CI) when it is not installed."""
    found = shutil.which(path) or (path if os.path.isfile(path) else None)
    if found is None:
        message = f"{path} is not installed (Debian openssh-client / openssh-server)"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_keypair(directory: Path, name: str, kind: str = "ed25519", bits: int | None = None) -> Path:
    """A new unencrypted OpenSSH key pair (``name`` and ``name.pub``) made by ``ssh-keygen``."""
    keygen = need_binary("ssh-keygen")
    path = directory / name
    argv = [keygen, "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)]
    if bits:
        argv += ["-b", str(bits)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


@dataclass(frozen=True)
class SftpResult:
    """What an ``sftp -b`` run printed and its exit status."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


@dataclass
class SftpClient:
    """OpenSSH's ``sftp`` in batch mode against a server on 127.0.0.1."""

    port: int
    workdir: Path
    username: str = USERNAME

    def run(self, commands: str, *, key: Path | None = None, password: str | None = None,
            username: str | None = None, timeout: float = 60.0, check: bool = False) -> SftpResult:
        """Run the batch ``commands`` (one per line; a leading ``-`` lets a line fail)."""
        sftp = need_binary("sftp")
        batch = self.workdir / f"batch-{time.monotonic_ns()}.txt"
        batch.write_text(textwrap.dedent(commands).strip() + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
        options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                   "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]
        if password is not None:
            # One pair of files per run: concurrent runs (the benchmark's clients) rewriting one
            # script while another client executes it failed with ETXTBSY ("Text file busy").
            tag = uuid.uuid4().hex[:12]
            askpass = self.workdir / f"askpass-{tag}.sh"
            secret = self.workdir / f"askpass-{tag}.secret"
            secret.write_text(password)
            askpass.write_text(f"#!/bin/sh\ncat '{secret}'\n")
            askpass.chmod(0o700)
            env.update({"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"})
            options += ["-o", "BatchMode=no", "-o", "PreferredAuthentications=password",
                        "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]
        if key is not None:
            options += ["-o", "IdentitiesOnly=yes", "-i", str(key),
                        "-o", "PreferredAuthentications=publickey", "-o", "PasswordAuthentication=no"]
        argv = [sftp, *options, "-b", str(batch), "-P", str(self.port),
                f"{username or self.username}@127.0.0.1"]
        done = subprocess.run(argv, cwd=self.workdir, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        result = SftpResult(done.returncode, done.stdout, done.stderr)
        if check and result.returncode != 0:
            raise AssertionError(f"sftp failed ({result.returncode}):\n{result.output}")
        return result


def hosted_profile(public_keys: list[str], *, password: str | None = PASSWORD, erp: bool = True,
                   **sftp: Any) -> dict[str, Any]:
    """The acme-retail profile with a hosted SFTP account (and ERP webhook ``erp-main``)."""
    hosted: dict[str, Any] = {"username": USERNAME, "public_keys": public_keys}
    if password is not None:
        hosted["password"] = password
    return {
        "id": PARTNER_ID,
        "name": "ACME Retail",
        "status": "test",
        "x12": {
            "interchange_id": {"qualifier": "ZZ", "id": "ACMERETAIL"},
            "our_id": {"qualifier": "ZZ", "id": "DISTCO"},
            "version": "004010",
            "acknowledgment": {"type": "997", "ta1": "on_request"},
        },
        "documents": {"purchase_order": {"direction": "inbound"}},
        "transports": {"sftp": {"hosted": hosted, **sftp}},
        **({"erp": {"webhook": "erp-main"}} if erp else {}),
    }


def save_partner(db: Database, settings: Settings, profile: dict[str, Any]) -> None:
    """Store (or update) a partner profile."""
    from gateway.secrets import SecretBox
    from partner_profiles.service import save_profile, validate_profile_data

    with db.unit_of_work() as session:
        box = SecretBox.from_settings(settings)
        save_profile(session, validate_profile_data(profile), box=box, actor="test")


@dataclass
class HostedSftp:
    """A running hosted server with the acme account, a client and the keys it may use."""

    server: Any
    settings: Settings
    db: Database
    publisher: RecordingPublisher
    client: SftpClient
    key: Path
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def events(self, prefix: str = "sftp.") -> list[tuple[str, dict[str, Any], Any]]:
        """(type, data, message id) of the audit events whose type starts with ``prefix``, oldest first."""
        return audit_events(self.db, prefix)

    def messages(self) -> list[Any]:
        """Every message (detached rows), oldest first."""
        return all_messages(self.db)


def audit_events(db: Database, prefix: str = "sftp.") -> list[tuple[str, dict[str, Any], Any]]:
    """(type, data, message id) of the events whose type starts with ``prefix``, oldest first."""
    from sqlalchemy import select

    from gateway.store.models import Event

    with db.unit_of_work(read_only=True) as session:
        return [(e.event_type, dict(e.data), e.message_id) for e in session.scalars(
            select(Event).where(Event.event_type.startswith(prefix)).order_by(Event.id))]


def all_messages(db: Database) -> list[Any]:
    """Every message as a detached row, oldest first."""
    from sqlalchemy import select

    from gateway.store.models import Message

    with db.sessions() as session:
        rows = list(session.scalars(select(Message).order_by(Message.received_at)))
        session.expunge_all()
        return rows


def sftp_tuning(**changes: Any) -> Any:
    """Test tuning: short timeouts, fast recovery, small limits."""
    from gateway.transports.sftp.config import SftpTuning

    values: dict[str, Any] = {"idle_timeout_seconds": 30.0, "recovery_interval_seconds": 1.0,
                              "max_failed_logins": 3, "lockout_seconds": 60.0, "max_sessions_per_account": 2,
                              "max_file_bytes": 1024 * 1024, "poll_min_age_seconds": 0.0,
                              "push_backoff_seconds": 0.1}
    values.update(changes)
    return SftpTuning(**values)


def start_hosted(tmp_path: Path, *, db: Database | None = None, settings: Settings | None = None,
                 tuning: Any = None, profile: dict[str, Any] | None = None,
                 publisher: Any = None) -> HostedSftp:
    """Start a hosted server for the acme account (password and an ed25519 key)."""
    from gateway.store.migrate import open_database
    from gateway.transports.sftp.server import HostedSftpServer

    need_binary("sftp")
    workdir = tmp_path / "client"
    workdir.mkdir(exist_ok=True)
    key = make_keypair(workdir, "id_acme")
    settings = settings or Settings(data_dir=tmp_path / "data", secret_key=SecretStr(SFTP_SECRET_KEY),
                                    sftp_port=free_port())
    db = db or open_database(settings)
    save_partner(db, settings, profile or hosted_profile([key.with_suffix(".pub").read_text()]))
    recording = RecordingPublisher()
    server = HostedSftpServer(settings, db=db, tuning=tuning or sftp_tuning(),
                              publisher=publisher if publisher is not None else recording, port=0)
    server.start()
    return HostedSftp(server, settings, db, recording, SftpClient(server.port, workdir), key, workdir)


@pytest.fixture
def hosted_sftp(tmp_path: Path) -> Iterator[HostedSftp]:
    """A hosted SFTP server (embedded SQLite, recording publisher) with the acme account."""
    hosted = start_hosted(tmp_path)
    yield hosted
    hosted.server.stop()
    hosted.db.dispose()


# --- OpenSSH sshd as a partner's server ------------------------------------------------------


@dataclass
class PartnerSshd:
    """A private sshd on 127.0.0.1 serving SFTP (``root`` holds the partner's folders) for key login."""

    port: int
    root: Path
    user: str
    client_key: Path
    host_key_line: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def path(self, relative: str) -> Path:
        """A path inside the served directory."""
        return self.root / relative.lstrip("/")

    def remote_profile(self, **changes: Any) -> dict[str, Any]:
        """``transports.sftp.remote`` for this server (key login, pinned host key)."""
        remote: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "username": self.user,
            "private_key": self.client_key.read_text(), "host_key": self.host_key_line,
            "inbound_dir": str(self.root / "outbound"), "outbound_dir": str(self.root / "inbound"),
            "pattern": "*.x12", "poll_seconds": 10,
        }
        remote.update(changes)
        return remote

    def stop(self) -> None:
        """Stop sshd (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_partner_sshd(tmp_path: Path) -> PartnerSshd:
    """Start ``sshd -D -e -f config`` on a free port: SFTP only, folders in a temporary directory.

    Runs as root with its own host key, ``AuthorizedKeysFile`` in the temporary folder,
    ``StrictModes no`` and ``UsePAM no``; the account logs in as root (paths are absolute).
    """
    sshd = need_binary(SSHD)
    if os.geteuid() != 0:
        pytest.skip("the partner sshd fixture runs sshd as root")
    base = tmp_path / "partner-sshd"
    base.mkdir()
    host_key = make_keypair(base, "ssh_host_ed25519_key")
    client_key = make_keypair(base, "id_distco")
    authorized = base / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    root = base / "root"
    root.mkdir(mode=0o755)
    for folder in ("outbound", "inbound", "archive"):
        (root / folder).mkdir(mode=0o777)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = free_port()
    user = "root"
    config = base / "sshd_config"
    config.write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {host_key}
        PidFile {base / 'sshd.pid'}
        AuthorizedKeysFile {authorized}
        StrictModes no
        UsePAM no
        PermitRootLogin yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PubkeyAuthentication yes
        Subsystem sftp internal-sftp
        ForceCommand internal-sftp
        AllowTcpForwarding no
        X11Forwarding no
        LogLevel VERBOSE
        """))
    log = base / "sshd.log"
    handle = log.open("wb")
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"sshd exited: {log.read_text()}")
            time.sleep(0.05)
    host_line = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    return PartnerSshd(port, root, user, client_key, host_line, process, log)


@pytest.fixture
def partner_sshd(tmp_path: Path) -> Iterator[PartnerSshd]:
    """A private OpenSSH sshd serving SFTP (a partner's server), stopped afterwards."""
    server = start_partner_sshd(tmp_path)
    yield server
    server.stop()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll until ``predicate`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# --- a worker that sends over SFTP and polls (before and after the lead wires the registry) --

SFTP_WORKER_CODE = """
import sys
from gateway.transports import registry
registry.TRANSPORT_CLASSES.setdefault("sftp", "gateway.transports.sftp.sender:SftpTransport")
from gateway.cli.server_commands import main
sys.exit(main(sys.argv[1:]))
"""


def start_sftp_worker(env: dict[str, str], log: Path, *, concurrency: int = 2, pool: str = "prefork") -> Any:
    """A real ``celery worker`` child whose registry has the ``sftp`` sender."""
    import sys

    from tests.conftest_pipeline import ChildProcess

    argv = [sys.executable, "-c", SFTP_WORKER_CODE, "worker", "--loglevel", "INFO", "--pool", pool,
            "--concurrency", str(concurrency)]
    return ChildProcess(argv, env, log).start()
