"""What a close does on the way to intake: the hash computed while writing, the archive entry
made from the spooled file, and the publish handed to the doorbell thread."""

from __future__ import annotations

import hashlib
import stat
import threading
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gateway.archive.blob_store import BlobStore
from gateway.processing.publisher import RecordingPublisher
from gateway.store.enums import OutboxStatus
from tests.conftest_sftp import PASSWORD, USERNAME, HostedSftp, start_hosted, wait_for

pytestmark = pytest.mark.integration
PO = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()


def _archived(hosted: HostedSftp, sha256: str) -> Path:
    path: Path = hosted.server.blobs.path_for(sha256)
    return path


def _no_reading_back(hosted: HostedSftp, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the upload was read back into the archive")

    monkeypatch.setattr(hosted.server.blobs, "put_stream", refuse)


def test_an_upload_written_in_order_becomes_its_archive_entry_without_being_read_back(
        hosted_sftp: HostedSftp, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_reading_back(hosted_sftp, monkeypatch)
    (hosted_sftp.workdir / "po.x12").write_bytes(PO)

    hosted_sftp.client.run("put po.x12 /inbound/po.x12\n", password=PASSWORD, check=True)

    [message] = hosted_sftp.messages()
    assert (message.content_sha256, message.size) == (hashlib.sha256(PO).hexdigest(), len(PO))
    archived = _archived(hosted_sftp, message.content_sha256)
    assert archived.read_bytes() == PO
    info = archived.stat()
    assert stat.S_IMODE(info.st_mode) == 0o444 and info.st_nlink == 1  # the spool entry is gone
    assert BlobStore(hosted_sftp.settings.archive_dir()).check(message.content_sha256) is None


def test_out_of_order_writes_are_archived_with_the_hash_of_the_whole_file(hosted_sftp: HostedSftp) -> None:
    transport = paramiko.Transport(("127.0.0.1", hosted_sftp.server.port))
    transport.connect(username=USERNAME, password=PASSWORD)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    half = len(PO) // 2
    try:
        with client.open("/inbound/po.x12", "wb") as handle:
            handle.seek(half)
            handle.write(PO[half:])
            handle.flush()
            handle.seek(0)
            handle.write(PO[:half])
    finally:
        client.close()
        transport.close()

    [message] = hosted_sftp.messages()
    assert message.content_sha256 == hashlib.sha256(PO).hexdigest()
    assert _archived(hosted_sftp, message.content_sha256).read_bytes() == PO


def test_a_renamed_temporary_upload_is_archived_from_the_file(hosted_sftp: HostedSftp) -> None:
    (hosted_sftp.workdir / "po.x12").write_bytes(PO)

    hosted_sftp.client.run("put po.x12 /inbound/po.x12.part\nrename /inbound/po.x12.part /inbound/po.x12\n",
                           password=PASSWORD, check=True)

    [message] = hosted_sftp.messages()
    assert message.content_sha256 == hashlib.sha256(PO).hexdigest()
    assert _archived(hosted_sftp, message.content_sha256).read_bytes() == PO


class BlockedPublisher(RecordingPublisher):
    """Publishes only once released (a broker that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def publish(self, task_name: str, kwargs: dict[str, Any]) -> bool:
        """Wait for the release, then record."""
        self.release.wait(30)
        return super().publish(task_name, kwargs)


def test_a_close_is_answered_without_waiting_for_the_broker_and_stop_publishes_what_is_queued(
        tmp_path: Path) -> None:
    publisher = BlockedPublisher()
    hosted = start_hosted(tmp_path, publisher=publisher)
    try:
        for name in ("a.x12", "b.x12"):
            (hosted.workdir / name).write_bytes(PO.replace(b"000000101", b"000000102" if name == "a.x12"
                                                           else b"000000103"))
        hosted.client.run("put a.x12 /inbound/a.x12\nput b.x12 /inbound/b.x12\n", password=PASSWORD,
                          check=True)  # answered while the broker hangs
        assert len(hosted.messages()) == 2 and publisher.published == []
        publisher.release.set()
    finally:
        hosted.server.stop()
        hosted.db.dispose()
    published = [kwargs["message_id"] for _, kwargs in publisher.published]
    assert published == [str(m.id) for m in hosted.messages()]  # in order, none left behind


def test_a_failed_publish_makes_the_outbox_row_due_for_the_sweeper(tmp_path: Path) -> None:
    from sqlalchemy import select

    from gateway.store.models import OutboxEntry

    hosted = start_hosted(tmp_path, publisher=RecordingPublisher(fail=True))
    try:
        (hosted.workdir / "po.x12").write_bytes(PO)
        hosted.client.run("put po.x12 /inbound/po.x12\n", password=PASSWORD, check=True)

        def statuses() -> list[OutboxStatus]:
            with hosted.db.unit_of_work(read_only=True) as session:
                return list(session.scalars(select(OutboxEntry.status)))

        wait_for(lambda: statuses() == [OutboxStatus.PENDING], message="the outbox row made due")
    finally:
        hosted.server.stop()
        hosted.db.dispose()
