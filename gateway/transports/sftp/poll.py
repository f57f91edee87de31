"""Polling a partner's SFTP server: download → intake (archive first) → delete the remote file.

The remote file is deleted only after intake committed. Each file is known by a stable id
(host, port, path, size, mtime and the content's SHA-256) stored as the message's
``transport_message_id``: after a crash between commit and delete the next poll finds the
message and only deletes the file — no loss, no second message. A file whose size or mtime
changes while it is read (still being written) is left for the next poll.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.archive.blob_store import BlobRef, BlobStore, BlobTooLarge
from gateway.intake.service import publish_received, record_received
from gateway.processing.publisher import Publisher
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.enums import Transport
from gateway.store.events import append_event
from gateway.store.models import Message
from gateway.transports import NotConfigured
from gateway.transports.sftp.client import open_remote, remote_path
from gateway.transports.sftp.config import SftpTuning
from gateway.transports.sftp.paths import is_temporary_name
from partner_profiles.schema import RemoteSftp
from partner_profiles.service import current_profile

log = logging.getLogger("edigate.sftp.poll")
CHUNK = 256 * 1024
MAX_TRANSPORT_ID = 500


@dataclass
class PollOutcome:
    """What one poll did."""

    partner_id: str
    received: list[uuid.UUID] = field(default_factory=list)
    already_received: int = 0
    left_for_later: int = 0
    errors: list[str] = field(default_factory=list)


def remote_file_id(remote: RemoteSftp, path: str, size: int, mtime: int, sha256: str) -> str:
    """The stable id of one remote file version (the message's ``transport_message_id``)."""
    place = f"{remote.host}:{remote.port}{path if path.startswith('/') else '/' + path}"
    ident = f"sftp:poll:{place}:{size}:{mtime}:{sha256}"
    if len(ident) > MAX_TRANSPORT_ID:
        ident = f"sftp:poll:{hashlib.sha256(place.encode()).hexdigest()}:{size}:{mtime}:{sha256}"
    return ident


def load_remote(db: Database, box: SecretBox, partner_id: str) -> RemoteSftp:
    """The partner's ``transports.sftp.remote`` with its secrets, or ``NotConfigured``."""
    with db.unit_of_work(read_only=True) as session:
        loaded = current_profile(session, partner_id, box)
    if loaded is None:
        raise NotConfigured(f"no partner {partner_id}")
    sftp = loaded[0].transports.sftp
    if sftp is None or sftp.remote is None:
        raise NotConfigured(f"partner {partner_id} has no transports.sftp.remote")
    return sftp.remote


def _find(db: Database, transport_id: str) -> uuid.UUID | None:
    with db.unit_of_work(read_only=True) as session:
        found: uuid.UUID | None = session.scalars(select(Message.id).where(
            Message.transport == Transport.SFTP, Message.transport_message_id == transport_id)).first()
        return found


def poll_partner(
    db: Database,
    blobs: BlobStore,
    box: SecretBox,
    partner_id: str,
    *,
    publisher: Publisher | None,
    tuning: SftpTuning,
    max_bytes: int | None,
    key_dir: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> PollOutcome:
    """Fetch every complete file matching the profile's pattern from its ``inbound_dir``."""
    remote = load_remote(db, box, partner_id)
    outcome = PollOutcome(partner_id)
    with open_remote(remote, timeout=tuning.connect_timeout_seconds, key_dir=key_dir) as client:
        for attrs in sorted(client.listdir_attr(remote.inbound_dir or "."), key=lambda a: a.filename):
            name = attrs.filename
            if (attrs.st_mode is None or not stat.S_ISREG(attrs.st_mode) or is_temporary_name(name)
                    or not fnmatch.fnmatchcase(name, remote.pattern)):
                continue
            if clock() - (attrs.st_mtime or 0) < tuning.poll_min_age_seconds:
                outcome.left_for_later += 1
                continue
            path = remote_path(remote.inbound_dir, name)
            try:
                _fetch_one(db, blobs, client, remote, partner_id, path, attrs, publisher, max_bytes, outcome)
            except BlobTooLarge:
                outcome.errors.append(f"{path}: larger than {max_bytes} bytes; left on the server")
            except OSError as exc:
                outcome.errors.append(f"{path}: {exc}")
    if outcome.received or outcome.errors:
        _audit_poll(db, remote, outcome)
    return outcome


def _fetch_one(db: Database, blobs: BlobStore, client: Any, remote: RemoteSftp, partner_id: str, path: str,
               attrs: Any, publisher: Publisher | None, max_bytes: int | None, outcome: PollOutcome) -> None:
    with client.open(path, "rb") as handle:
        handle.prefetch(attrs.st_size)
        blob: BlobRef = blobs.put_stream(iter(lambda: handle.read(CHUNK), b""), max_bytes=max_bytes)
    after = client.stat(path)
    if after.st_size != attrs.st_size or after.st_mtime != attrs.st_mtime or blob.size != attrs.st_size:
        outcome.left_for_later += 1  # still being written
        return
    transport_id = remote_file_id(remote, path, attrs.st_size, attrs.st_mtime, blob.sha256)
    if _find(db, transport_id) is not None:
        outcome.already_received += 1  # committed before a crash; only the delete was missing
    else:
        with db.unit_of_work() as session:
            received = record_received(
                session, blob, partner_id=partner_id, transport=Transport.SFTP,
                content_type="application/edi-x12", filename=Path(path).name,
                transport_message_id=transport_id, actor="sftp-poll",
            )
            append_event(
                session, event_type="sftp.file_polled", actor="sftp-poll", partner_id=partner_id,
                message_id=received.message_id, subject_type="message", subject_id=received.message_id,
                correlation_id=received.correlation_id,
                data={"host": remote.host, "port": remote.port, "path": path, "size": blob.size,
                      "sha256": blob.sha256, "mtime": attrs.st_mtime},
            )
        publish_received(db, publisher, received)
        outcome.received.append(received.message_id)
    client.remove(path)


def _audit_poll(db: Database, remote: RemoteSftp, outcome: PollOutcome) -> None:
    from gateway.transports.sftp.audit import record_event

    record_event(db, "sftp.remote_polled", username=None, partner_id=outcome.partner_id,
                 host=remote.host, port=remote.port, directory=remote.inbound_dir,
                 received=len(outcome.received), already_received=outcome.already_received,
                 left_for_later=outcome.left_for_later, errors=outcome.errors[:20])
