"""End to end: a partner uploads with OpenSSH ``sftp`` → the ERP gets the purchase_order webhook →
the partner downloads the 997 we generated from ``outbound/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest_pipeline import RecordingServer, Stack, build_stack, pipeline_profile
from tests.conftest_sftp import (
    PASSWORD,
    USERNAME,
    SftpClient,
    audit_events,
    make_keypair,
    need_binary,
    save_partner,
    sftp_tuning,
    start_sftp_worker,
    wait_for,
)

PO = Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12"


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.integration)])
def sftp_stack(request: pytest.FixtureRequest, tmp_path: Path, erp_server: RecordingServer,
               partner_http: RecordingServer) -> Iterator[tuple[Stack, Any, SftpClient]]:
    """A running stack whose partner has a hosted SFTP account, and our SFTP server in process."""
    from gateway.transports.sftp.server import HostedSftpServer

    need_binary("sftp")
    for stack in build_stack(request.param, tmp_path, request, erp_server, partner_http):
        profile = pipeline_profile(partner_http.url)
        profile["transports"] = {"sftp": {"hosted": {"username": USERNAME, "password": PASSWORD}}}
        save_partner(stack.db, stack.settings, profile)
        stack.worker = start_sftp_worker(stack.env, tmp_path / "worker.log")
        stack.start_beat()
        server = HostedSftpServer(stack.settings, db=stack.db, tuning=sftp_tuning(), port=0)
        server.start()
        workdir = tmp_path / "client"
        workdir.mkdir()
        make_keypair(workdir, "unused")
        try:
            yield stack, server, SftpClient(server.port, workdir)
        finally:
            server.stop()


@pytest.mark.integration
def test_an_sftp_upload_reaches_the_erp_and_the_997_is_downloadable(sftp_stack: Any) -> None:
    stack, server, client = sftp_stack
    (client.workdir / "po.x12").write_bytes(PO.read_bytes())

    client.run("cd inbound\nput po.x12 po.x12.filepart\nrename po.x12.filepart po.x12\n",
               password=PASSWORD, check=True)

    wait_for(lambda: stack.erp.requests, timeout=60, message="the purchase_order webhook")
    hook = stack.erp.requests[0].json()
    assert hook["type"] == "document.received" and hook["document_type"] == "purchase_order"
    assert hook["source"]["transport"] == "sftp"
    outbound = server.layout.folder(USERNAME, "outbound")
    acks = wait_for(lambda: sorted(p.name for p in outbound.iterdir() if p.name.startswith("997_")),
                    timeout=60, message="the 997 in outbound/")
    assert len(acks) == 1
    ack = outbound / acks[0]

    result = client.run(f"cd outbound\nget {ack.name}\nrm {ack.name}\n", password=PASSWORD, check=True)

    assert result.returncode == 0
    text = (client.workdir / ack.name).read_text()
    assert text.startswith("ISA") and "AK1*PO*" in text and "AK9*A" in text
    events = [e[0] for e in audit_events(stack.db)]
    assert {"sftp.login", "sftp.file_received", "sftp.file_downloaded", "sftp.file_deleted"} <= set(events)
    downloaded = next(e for e in audit_events(stack.db) if e[0] == "sftp.file_downloaded")
    assert downloaded[2] is not None  # linked to the 997's outbound message


@pytest.mark.integration
def test_uploads_closed_together_share_a_task_and_a_malformed_one_is_rejected_alone(
    sftp_stack: Any, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from gateway.store.enums import MessageStatus
    from gateway.store.models import Message
    from gateway.transports.sftp.server import HostedSftpServer

    stack, _, client = sftp_stack
    # A long doorbell interval: the closes after the first wait for it and go out as one task.
    server = HostedSftpServer(stack.settings, db=stack.db, tuning=sftp_tuning(publish_interval_seconds=2.0),
                              port=0)
    server.start()
    try:
        body = PO.read_bytes()
        for n in range(5):
            (client.workdir / f"po{n}.x12").write_bytes(body.replace(b"000000101", f"{900 + n:09d}".encode()))
        broken = body.replace(b"IEA*1*000000101", b"IEA*1*000000999").replace(b"000000101", b"000000950")
        (client.workdir / "bad.x12").write_bytes(broken)
        names = [f"po{n}.x12" for n in range(5)] + ["bad.x12"]
        SftpClient(server.port, client.workdir).run(
            "cd inbound\n" + "".join(f"put {name}\n" for name in names), password=PASSWORD, check=True)

        wait_for(lambda: len(stack.erp.requests) >= 5, timeout=60, message="five webhooks")

        def processed_bad() -> Any:
            with stack.db.unit_of_work(read_only=True) as session:
                return session.execute(select(Message.status, Message.error).where(
                    Message.filename == "bad.x12", Message.status != MessageStatus.RECEIVED)).first()

        bad = wait_for(processed_bad, timeout=30, message="the malformed upload processed")
    finally:
        server.stop()
    assert bad.status is MessageStatus.REJECTED and "IEA" in (bad.error or "")
    hooks = [r.json() for r in stack.erp.requests]
    assert len(hooks) == 5 and len({h["id"] for h in hooks}) == 5  # each delivered once
    log = (tmp_path / "worker.log").read_text(errors="replace")
    tasks = re.findall(r"Task edigate\.process_message\[[^\]]+\] succeeded", log)
    assert 1 <= len(tasks) <= 3  # the first close alone, the others together (not six tasks)
