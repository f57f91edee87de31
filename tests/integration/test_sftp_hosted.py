"""The hosted SFTP server against OpenSSH's ``sftp`` client in batch mode (a peer nobody here wrote)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gateway.transports import OutboundMessage
from gateway.transports.sftp.ingest import spool_upload
from gateway.transports.sftp.paths import MailboxLayout
from gateway.transports.sftp.sender import SftpTransport
from partner_profiles.service import validate_profile_data
from tests.conftest_sftp import (
    PARTNER_ID,
    PASSWORD,
    USERNAME,
    HostedSftp,
    hosted_profile,
    save_partner,
    sftp_tuning,
    start_hosted,
    wait_for,
)

pytestmark = pytest.mark.integration
PO = Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12"


def _types(hosted: HostedSftp) -> list[str]:
    return [event[0] for event in hosted.events()]


def _inbound(hosted: HostedSftp) -> Path:
    folder: Path = hosted.server.layout.folder(USERNAME, "inbound")
    return folder


def test_password_login_upload_is_received_published_and_leaves_inbound(hosted_sftp: HostedSftp) -> None:
    (hosted_sftp.workdir / "po.x12").write_bytes(PO.read_bytes())

    result = hosted_sftp.client.run("cd inbound\nput po.x12\nls -l\n", password=PASSWORD)

    assert result.returncode == 0, result.output
    [message] = hosted_sftp.messages()
    assert (message.partner_id, message.filename, message.transport.value) == (PARTNER_ID, "po.x12", "sftp")
    assert message.size == PO.stat().st_size
    wait_for(lambda: hosted_sftp.publisher.published, message="the publish (doorbell thread)")
    assert [name for name, _ in hosted_sftp.publisher.published] == ["edigate.process_message"]
    assert list(_inbound(hosted_sftp).iterdir()) == []
    types = _types(hosted_sftp)
    assert types[:2] == ["sftp.login", "sftp.file_received"]
    wait_for(lambda: "sftp.logout" in _types(hosted_sftp), message="logout event")


def test_key_login_with_temporary_name_is_received_only_after_the_rename(hosted_sftp: HostedSftp) -> None:
    (hosted_sftp.workdir / "po.x12").write_bytes(PO.read_bytes())

    hosted_sftp.client.run("cd inbound\nput po.x12 po.x12.part\n", key=hosted_sftp.key, check=True)
    assert hosted_sftp.messages() == []
    assert [p.name for p in _inbound(hosted_sftp).iterdir()] == ["po.x12.part"]

    hosted_sftp.client.run("cd inbound\nrename po.x12.part po.x12\n", key=hosted_sftp.key, check=True)

    [message] = hosted_sftp.messages()
    assert message.filename == "po.x12"
    assert list(_inbound(hosted_sftp).iterdir()) == []
    login = next(e for e in hosted_sftp.events() if e[0] == "sftp.login")
    assert login[1]["method"] == "publickey" and login[1]["key_fingerprint"].startswith("SHA256:")


def test_a_half_written_upload_is_never_processed(hosted_sftp: HostedSftp) -> None:
    sock_client = _paramiko_session(hosted_sftp)
    handle = sock_client.open("/inbound/po.x12", "wb")
    handle.write(PO.read_bytes()[:100])
    handle.flush()
    sock_client.get_channel().get_transport().close()  # the connection drops mid-upload

    wait_for(lambda: "sftp.upload_abandoned" in _types(hosted_sftp), message="abandoned upload event")
    assert hosted_sftp.messages() == []
    assert list(hosted_sftp.server.layout.incoming(USERNAME).iterdir()) == []


def test_traversal_absolute_paths_symlinks_and_writes_outside_inbound_are_refused(
        hosted_sftp: HostedSftp) -> None:
    (hosted_sftp.workdir / "po.x12").write_bytes(PO.read_bytes())
    outbound = hosted_sftp.server.layout.folder(USERNAME, "outbound")
    hosted_sftp.server.layout.ensure(USERNAME)
    os.symlink("/etc/passwd", outbound / "planted")

    result = hosted_sftp.client.run("""
        ls -la /
        ls -la /outbound
        -get /../../etc/passwd stolen1
        -get ../etc/passwd stolen2
        -get /etc/passwd stolen3
        -get /outbound/planted stolen4
        -cd /..
        -symlink /etc/passwd /inbound/link
        -put po.x12 /outbound/po.x12
        -put po.x12 /po.x12
        -put po.x12 /inbound/../po.x12
        -mkdir /inbound/sub
        -rename /outbound/planted /inbound/x
        """, password=PASSWORD)

    assert result.returncode == 0, result.output
    listing = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("sftp>"))
    assert "inbound" in listing and "outbound" in listing
    assert "planted" not in listing and "etc" not in listing and "passwd" not in listing
    assert not any((hosted_sftp.workdir / f"stolen{i}").exists() for i in range(1, 5))
    assert hosted_sftp.messages() == []
    refused = [e[1]["operation"] for e in hosted_sftp.events() if e[0] == "sftp.path_refused"]
    assert {"realpath", "symlink", "open", "mkdir"} <= set(refused)
    home = hosted_sftp.server.layout.home(USERNAME)
    assert sorted(p.name for p in home.iterdir()) == ["inbound", "outbound"]


def test_failed_logins_lock_the_account_even_for_the_right_password(hosted_sftp: HostedSftp) -> None:
    for _ in range(3):  # max_failed_logins in the test tuning
        assert hosted_sftp.client.run("ls\n", password="wrong password").returncode != 0

    locked = hosted_sftp.client.run("ls\n", password=PASSWORD)

    assert locked.returncode != 0
    types = _types(hosted_sftp)
    assert types.count("sftp.login_failed") == 3
    assert "sftp.account_locked" in types
    assert any(e[0] == "sftp.login_refused" and e[1]["reason"] == "account_locked"
               for e in hosted_sftp.events())
    assert hosted_sftp.client.run("ls\n", key=hosted_sftp.key).returncode != 0  # keys too while locked


def test_unknown_users_fail_and_are_audited(hosted_sftp: HostedSftp) -> None:
    result = hosted_sftp.client.run("ls\n", password=PASSWORD, username="mallory")

    assert result.returncode != 0
    failed = [e for e in hosted_sftp.events() if e[0] == "sftp.login_failed"]
    assert failed and failed[0][1]["reason"] == "unknown_user" and failed[0][1]["username"] == "mallory"


def test_an_upload_over_the_size_limit_is_refused_and_not_kept(tmp_path: Path) -> None:
    hosted = start_hosted(tmp_path, tuning=sftp_tuning(max_file_bytes=1000))
    try:
        (hosted.workdir / "big.x12").write_bytes(b"x" * 5000)
        result = hosted.client.run("put big.x12 /inbound/big.x12\n", password=PASSWORD)
        assert result.returncode != 0
        assert hosted.messages() == []
        assert list(hosted.server.layout.incoming(USERNAME).iterdir()) == []
        assert "sftp.upload_refused" in _types(hosted)
    finally:
        hosted.server.stop()
        hosted.db.dispose()


def test_an_idle_session_is_closed(tmp_path: Path) -> None:
    hosted = start_hosted(tmp_path, tuning=sftp_tuning(idle_timeout_seconds=1.0))
    try:
        result = hosted.client.run("ls /\n!sleep 3\nls /inbound\n", password=PASSWORD)
        assert result.returncode != 0
        wait_for(lambda: any(e[0] == "sftp.logout" and e[1]["reason"] == "idle_timeout"
                             for e in hosted.events()), message="idle logout")
    finally:
        hosted.server.stop()
        hosted.db.dispose()


def _paramiko_session(hosted: HostedSftp) -> Any:
    transport = paramiko.Transport(("127.0.0.1", hosted.server.port))
    transport.connect(username=USERNAME, password=PASSWORD)
    return paramiko.SFTPClient.from_transport(transport)


def test_sessions_per_account_are_capped(hosted_sftp: HostedSftp) -> None:
    first, second = _paramiko_session(hosted_sftp), _paramiko_session(hosted_sftp)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            _paramiko_session(hosted_sftp)
        assert any(e[0] == "sftp.login_refused" and e[1]["reason"] == "too_many_sessions"
                   for e in hosted_sftp.events())
    finally:
        first.close()
        second.close()
        first.get_channel().get_transport().close()
        second.get_channel().get_transport().close()
    wait_for(lambda: hosted_sftp.server.login.sessions.count(USERNAME) == 0, message="sessions released")
    assert hosted_sftp.client.run("ls /\n", password=PASSWORD).returncode == 0


def test_spooled_uploads_left_by_a_crash_are_ingested_exactly_once(hosted_sftp: HostedSftp) -> None:
    layout: MailboxLayout = hosted_sftp.server.layout
    layout.ensure(USERNAME)
    written = layout.incoming(USERNAME) / "crashed.upload"
    written.write_bytes(PO.read_bytes())
    spool_upload(layout, written, partner_id=PARTNER_ID, name="po.x12")  # then the process died

    assert hosted_sftp.server.ingestor.recover() == 1
    assert hosted_sftp.server.ingestor.recover() == 0
    assert [m.filename for m in hosted_sftp.messages()] == ["po.x12"]
    assert list(layout.spool.glob("*/*")) == []


def test_a_crash_after_intake_committed_leaves_no_second_message(hosted_sftp: HostedSftp) -> None:
    layout: MailboxLayout = hosted_sftp.server.layout
    layout.ensure(USERNAME)
    written = layout.incoming(USERNAME) / "a.upload"
    written.write_bytes(PO.read_bytes())
    spooled = spool_upload(layout, written, partner_id=PARTNER_ID, name="po.x12")
    kept = spooled.read_bytes()
    hosted_sftp.server.ingestor.ingest(spooled, partner_id=PARTNER_ID, username=USERNAME)
    spooled.parent.mkdir()
    spooled.write_bytes(kept)  # as if the process died after the commit, before removing the entry

    hosted_sftp.server.ingestor.recover()

    assert len(hosted_sftp.messages()) == 1
    assert not spooled.parent.exists()


def test_outbound_files_are_downloaded_then_deleted(hosted_sftp: HostedSftp) -> None:
    sender = SftpTransport(settings=hosted_sftp.settings, tuning=sftp_tuning())
    profile = validate_profile_data(hosted_profile([], password=PASSWORD))
    ack = b"ISA*00*997 content~"
    message = OutboundMessage("0a1b2c3d-msg", PARTNER_ID, "application/edi-x12", "997_000000001.x12")
    receipt = sender.send(message, ack, profile)
    assert receipt.remote_id == "sftp-hosted:acme/outbound/997_000000001.x12"
    again = sender.send(message, ack, profile)
    assert again.remote_id == receipt.remote_id  # a resend after a crash does not make a second file

    result = hosted_sftp.client.run("cd outbound\nls\nget 997_000000001.x12\nrm 997_000000001.x12\nls\n",
                                    key=hosted_sftp.key)

    assert result.returncode == 0, result.output
    assert (hosted_sftp.workdir / "997_000000001.x12").read_bytes() == ack
    assert list(hosted_sftp.server.layout.folder(USERNAME, "outbound").iterdir()) == []
    types = _types(hosted_sftp)
    assert "sftp.file_downloaded" in types and "sftp.file_deleted" in types


def test_a_profile_change_is_picked_up_at_the_next_login(hosted_sftp: HostedSftp) -> None:
    save_partner(hosted_sftp.db, hosted_sftp.settings, hosted_profile([], password="a new password"))

    assert hosted_sftp.client.run("ls /\n", password=PASSWORD).returncode != 0
    assert hosted_sftp.client.run("ls /\n", key=hosted_sftp.key).returncode != 0  # key removed
    assert hosted_sftp.client.run("ls /\n", password="a new password").returncode == 0


def test_a_suspended_partner_cannot_log_in(hosted_sftp: HostedSftp) -> None:
    profile = hosted_profile([hosted_sftp.key.with_suffix(".pub").read_text()])
    profile["status"] = "suspended"
    save_partner(hosted_sftp.db, hosted_sftp.settings, profile)

    assert hosted_sftp.client.run("ls /\n", key=hosted_sftp.key).returncode != 0
    assert any(e[0] == "sftp.login_refused" and e[1]["reason"] == "partner_suspended"
               for e in hosted_sftp.events())


def test_host_keys_are_generated_once_and_shared_by_every_server(hosted_sftp: HostedSftp) -> None:
    from gateway.transports.sftp.server import HostedSftpServer

    other = HostedSftpServer(hosted_sftp.settings, db=hosted_sftp.db, tuning=sftp_tuning(), port=0)
    other.start()
    try:
        assert other.host_key_infos() == hosted_sftp.server.host_key_infos()
        assert {i.algorithm for i in other.host_key_infos()} == {"ssh-ed25519", "ssh-rsa"}
    finally:
        other.stop()


def test_a_new_session_can_write_at_once(hosted_sftp: HostedSftp, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folders and the session slot exist before the client can send its first request."""
    layout = hosted_sftp.server.layout
    shutil.rmtree(layout.home(USERNAME), ignore_errors=True)
    shutil.rmtree(layout.incoming(USERNAME), ignore_errors=True)
    real_ensure = layout.ensure

    def slow_ensure(username: str) -> None:  # a slow disk widens the window a CI run once hit
        time.sleep(0.5)
        real_ensure(username)

    monkeypatch.setattr(layout, "ensure", slow_ensure)
    client = _paramiko_session(hosted_sftp)
    try:
        client.open("/inbound/po.x12", "wb").close()
        assert "sftp.login" in _types(hosted_sftp)
    finally:
        client.close()
        client.get_channel().get_transport().close()
