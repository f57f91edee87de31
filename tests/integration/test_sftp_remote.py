"""Partners' servers: polling and pushing against a real OpenSSH sshd started by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gateway.archive.blob_store import BlobStore
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import RecordingPublisher
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.migrate import open_database
from gateway.transports import OutboundMessage, TransportError
from gateway.transports.sftp.client import HostKeyMismatch
from gateway.transports.sftp.poll import poll_partner
from gateway.transports.sftp.sender import SftpTransport
from gateway.transports.sftp.tasks import run_poll, sweep_polls
from partner_profiles.service import validate_profile_data
from tests.conftest_sftp import (
    SFTP_SECRET_KEY,
    PartnerSshd,
    all_messages,
    audit_events,
    hosted_profile,
    save_partner,
    sftp_tuning,
)

pytestmark = pytest.mark.integration
PO = Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12"


@pytest.fixture
def remote_env(tmp_path: Path, partner_sshd: PartnerSshd) -> Any:
    """Settings, a migrated database and the acme partner whose server is the test sshd."""
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(SFTP_SECRET_KEY))
    db = open_database(settings)
    profile = hosted_profile([], password=None)
    profile["transports"]["sftp"] = {"remote": partner_sshd.remote_profile()}
    save_partner(db, settings, profile)
    yield settings, db, partner_sshd
    db.dispose()


def _poll(settings: Settings, db: Database, **tuning: Any) -> Any:
    box = SecretBox.from_settings(settings)
    return poll_partner(db, BlobStore(settings.archive_dir()), box, "acme-retail",
                        publisher=RecordingPublisher(), tuning=sftp_tuning(**tuning), max_bytes=1024 * 1024)


def test_poll_takes_matching_files_through_intake_and_deletes_them_remotely(remote_env: Any) -> None:
    settings, db, sshd = remote_env
    outbound = sshd.path("outbound")
    (outbound / "po1.x12").write_bytes(PO.read_bytes())
    (outbound / "po2.x12").write_bytes(PO.read_bytes().replace(b"000000001", b"000000002"))
    (outbound / "half.x12.part").write_bytes(b"ISA*00*")
    (outbound / "readme.txt").write_text("not EDI")

    outcome = _poll(settings, db)

    assert len(outcome.received) == 2 and not outcome.errors
    assert sorted(p.name for p in outbound.iterdir()) == ["half.x12.part", "readme.txt"]
    messages = all_messages(db)
    assert sorted(m.filename for m in messages) == ["po1.x12", "po2.x12"]
    assert all(m.transport.value == "sftp" for m in messages)
    assert all(m.transport_message_id.startswith("sftp:poll:") for m in messages)
    assert [e[0] for e in audit_events(db, "sftp.file_polled")] == ["sftp.file_polled"] * 2
    assert _poll(settings, db).received == []


def test_poll_after_a_crash_between_commit_and_delete_deletes_without_a_second_message(
        remote_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, db, sshd = remote_env
    (sshd.path("outbound") / "po.x12").write_bytes(PO.read_bytes())
    import paramiko

    def crash(self: Any, path: str) -> None:
        raise OSError("connection lost before the delete")

    with monkeypatch.context() as patch:
        patch.setattr(paramiko.SFTPClient, "remove", crash)
        first = _poll(settings, db)
    assert len(first.received) == 1 and first.errors
    assert (sshd.path("outbound") / "po.x12").exists()

    second = _poll(settings, db)

    assert second.received == [] and second.already_received == 1
    assert not (sshd.path("outbound") / "po.x12").exists()
    assert len(all_messages(db)) == 1


def test_poll_leaves_a_file_that_is_still_being_written(remote_env: Any) -> None:
    settings, db, sshd = remote_env
    (sshd.path("outbound") / "po.x12").write_bytes(PO.read_bytes())

    outcome = _poll(settings, db, poll_min_age_seconds=60.0)

    assert outcome.received == [] and outcome.left_for_later == 1
    assert (sshd.path("outbound") / "po.x12").exists()


def test_poll_refuses_a_server_whose_host_key_is_not_the_pinned_one(remote_env: Any, tmp_path: Path) -> None:
    settings, db, sshd = remote_env
    from tests.conftest_sftp import make_keypair

    other = make_keypair(tmp_path, "other_host_key")
    profile = hosted_profile([], password=None)
    profile["transports"]["sftp"] = {"remote": sshd.remote_profile(
        host_key=" ".join(other.with_suffix(".pub").read_text().split()[:2]))}
    save_partner(db, settings, profile)
    (sshd.path("outbound") / "po.x12").write_bytes(PO.read_bytes())

    with pytest.raises(HostKeyMismatch):
        _poll(settings, db)
    assert (sshd.path("outbound") / "po.x12").exists()
    assert all_messages(db) == []


def test_poll_task_runs_once_per_interval_under_a_lease(remote_env: Any) -> None:
    settings, db, sshd = remote_env
    (sshd.path("outbound") / "po.x12").write_bytes(PO.read_bytes())
    publisher = RecordingPublisher()
    ctx = PipelineContext.from_settings(settings, db=db, publisher=publisher)

    assert sweep_polls(ctx) == 1
    assert publisher.published[0] == ("edigate.sftp_poll", {"partner_id": "acme-retail"})
    outcome = run_poll(ctx, "acme-retail", sftp_tuning())
    assert outcome is not None and len(outcome.received) == 1
    assert run_poll(ctx, "acme-retail", sftp_tuning()) is None  # not due again for poll_seconds
    assert sweep_polls(ctx) == 0  # polled just now: nothing is due


def _profile(sshd: PartnerSshd, **remote: Any) -> Any:
    profile = hosted_profile([], password=None)
    profile["transports"]["sftp"] = {"remote": sshd.remote_profile(**remote)}
    return validate_profile_data(profile)


def test_push_uploads_under_a_temporary_name_and_renames(partner_sshd: PartnerSshd, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(SFTP_SECRET_KEY))
    sender = SftpTransport(timeout=10, settings=settings, tuning=sftp_tuning())
    payload = PO.read_bytes()

    receipt = sender.send(OutboundMessage("m-1", "acme-retail", "application/edi-x12", "997_000000007.x12"),
                          payload, _profile(partner_sshd))

    inbound = partner_sshd.path("inbound")
    assert sorted(p.name for p in inbound.iterdir()) == ["997_000000007.x12"]
    assert (inbound / "997_000000007.x12").read_bytes() == payload
    assert receipt.remote_id is not None and receipt.remote_id.endswith("/inbound/997_000000007.x12")


def test_push_with_password_auth_refused_is_not_retried(partner_sshd: PartnerSshd, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(SFTP_SECRET_KEY))
    sleeps: list[float] = []
    sender = SftpTransport(timeout=10, settings=settings, tuning=sftp_tuning(), sleep=sleeps.append)
    profile = _profile(partner_sshd, private_key=None, password="nope")

    with pytest.raises(TransportError) as caught:
        sender.send(OutboundMessage("m-2", "acme-retail", "application/edi-x12", "x.x12"), b"ISA", profile)

    assert caught.value.retryable is False and sleeps == []


def test_push_to_a_server_that_is_down_retries_with_backoff_then_fails_retryably(
        partner_sshd: PartnerSshd, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(SFTP_SECRET_KEY))
    sleeps: list[float] = []
    tuning = sftp_tuning(push_attempts=3)
    sender = SftpTransport(timeout=5, settings=settings, tuning=tuning, sleep=sleeps.append)
    partner_sshd.stop()

    with pytest.raises(TransportError) as caught:
        sender.send(OutboundMessage("m-3", "acme-retail", "application/edi-x12", "x.x12"), b"ISA",
                    _profile(partner_sshd))

    assert caught.value.retryable is True
    assert sleeps == [0.1, 0.2]


def test_push_refuses_a_server_whose_host_key_changed(partner_sshd: PartnerSshd, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(SFTP_SECRET_KEY))
    sender = SftpTransport(timeout=10, settings=settings, tuning=sftp_tuning())
    wrong = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBctQM/FaS9o9i4519433j/iSyImgRTiM1n3A94uA2eI"

    with pytest.raises(HostKeyMismatch):
        sender.send(OutboundMessage("m-4", "acme-retail", "application/edi-x12", "x.x12"), b"ISA",
                    _profile(partner_sshd, host_key=wrong))
    assert list(partner_sshd.path("inbound").iterdir()) == []
