"""From a closed upload to a received message: spool, archive, record, publish, clean up.

A complete upload is first *renamed* (atomic, same filesystem) from where it was written into
``spool/<partner>/<id>/<name>``; only then is it archived and recorded through intake with
``transport_message_id = "sftp:hosted:<id>"``. A crash at any point leaves either the spool
entry (the recovery sweep ingests it; if intake had already committed, the message with that
id is found and the entry is just removed) or nothing to do. So a file is never lost and
never becomes two messages; a lock on the entry keeps two processes from ingesting it at once.

A live close (:meth:`SpoolIngestor.receive`) locks its new entry before the file enters it, so
no sweep can race it and no earlier run can have recorded it. When the upload's hash was
computed while it was written, the spooled file is hard-linked into the archive (its bytes were
fsynced at the close) instead of being read and copied again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef, BlobStore, BlobTooLarge
from gateway.intake.doorbell import Doorbell
from gateway.intake.service import IntakeError, Received, publish_received, record_received
from gateway.processing.publisher import Publisher
from gateway.runtime import HeapSettler
from gateway.store.db import Database
from gateway.store.enums import Transport
from gateway.store.events import append_event
from gateway.store.models import Message
from gateway.transports.sftp.group_commit import GroupCommit
from gateway.transports.sftp.paths import MailboxLayout

log = logging.getLogger("edigate.sftp.ingest")
CHUNK = 1024 * 1024
TRANSPORT_ID_PREFIX = "sftp:hosted:"


@dataclass(frozen=True)
class Ingested:
    """The message a spooled upload became (``duplicate_run``: it had been recorded before)."""

    message_id: uuid.UUID
    size: int
    sha256: str
    duplicate_run: bool = False


class IngestRefused(Exception):
    """Intake refused the upload (partner unknown or suspended, too large); it was set aside."""


class SpoolBusy(Exception):
    """Another process is ingesting this spool entry right now."""


def _new_entry(layout: MailboxLayout, partner_id: str) -> Path:
    entry = layout.spool / partner_id / uuid.uuid4().hex
    entry.mkdir(parents=True, mode=0o700)
    return entry


def spool_upload(layout: MailboxLayout, written: Path, *, partner_id: str, name: str) -> Path:
    """Move a completely written upload into the spool (atomic rename); returns its spool path."""
    target = _new_entry(layout, partner_id) / name
    os.replace(written, target)
    _fsync_dir(target.parent)
    return target


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _existing(db: Database, transport_id: str) -> Message | None:
    with db.unit_of_work(read_only=True) as session:
        return session.scalars(select(Message).where(
            Message.transport == Transport.SFTP, Message.transport_message_id == transport_id)).first()


class SpoolIngestor:
    """Turns spool entries into received messages; also the crash-recovery sweep."""

    def __init__(self, db: Database, blobs: BlobStore, layout: MailboxLayout, *, publisher: Publisher | None,
                 max_bytes: int | None, background_publish: bool = False,
                 publish_interval: float = 0.0, group_commit: bool = False) -> None:
        self.db = db
        self.blobs = blobs
        self.layout = layout
        self.publisher = publisher
        self.max_bytes = max_bytes
        self.doorbell: Doorbell | None = None
        if background_publish and publisher is not None:
            self.doorbell = Doorbell(db, publisher, name="sftp-doorbell", min_interval=publish_interval)
        # Concurrent closes commit together (the server); recovery and tests may go one by one.
        self.group = GroupCommit(db) if group_commit else None
        self.settler = HeapSettler()

    def receive(self, written: Path, *, partner_id: str, name: str, username: str | None,
                address: str | None = None, known: BlobRef | None = None) -> Ingested:
        """Spool a completely written upload under a new locked entry and ingest it (a close).

        ``known``: the hash and size computed while the file was written, when they cover it.
        """
        entry = _new_entry(self.layout, partner_id)
        lock_fd = os.open(entry, os.O_RDONLY)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # before the file appears: the sweep skips the entry
            spooled = entry / name
            os.replace(written, spooled)
            os.fsync(lock_fd)  # the entry directory: the rename is durable
            ingested = self._ingest_locked(spooled, partner_id=partner_id, username=username,
                                           address=address, fresh=True, known=known)
        finally:
            os.close(lock_fd)
        self.settler.tick()
        return ingested

    def ingest(self, spooled: Path, *, partner_id: str, username: str | None, address: str | None = None
               ) -> Ingested:
        """Archive and record one spool entry, publish it, and remove the entry."""
        entry = spooled.parent
        lock_fd = os.open(entry, os.O_RDONLY)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SpoolBusy(str(entry)) from None
            if not spooled.exists():  # ingested by someone else after we listed it
                raise SpoolBusy(str(entry))
            return self._ingest_locked(spooled, partner_id=partner_id, username=username, address=address)
        finally:
            os.close(lock_fd)

    def _ingest_locked(self, spooled: Path, *, partner_id: str, username: str | None, address: str | None,
                       fresh: bool = False, known: BlobRef | None = None) -> Ingested:
        entry = spooled.parent
        transport_id = TRANSPORT_ID_PREFIX + entry.name
        found = None if fresh else _existing(self.db, transport_id)
        if found is not None:
            self._remove(entry)
            return Ingested(found.id, found.size, found.content_sha256, duplicate_run=True)
        try:
            blob = self._archive(spooled, known)
        except BlobTooLarge as exc:
            self._set_aside(entry, partner_id)
            raise IngestRefused(str(exc)) from exc
        actor = f"sftp:{username}" if username else "sftp"

        def record(session: Session) -> Received:
            received = record_received(
                session, blob, partner_id=partner_id, transport=Transport.SFTP,
                content_type="application/edi-x12", filename=spooled.name,
                transport_message_id=transport_id, actor=actor,
            )
            append_event(
                session, event_type="sftp.file_received", actor=actor,
                partner_id=partner_id, message_id=received.message_id, subject_type="message",
                subject_id=received.message_id, correlation_id=received.correlation_id,
                data={"username": username, "filename": spooled.name, "size": blob.size,
                      "sha256": blob.sha256, "address": address, "spool_id": entry.name},
            )
            return received

        try:
            if self.group is not None:
                received = self.group.run(record)
            else:
                with self.db.unit_of_work() as session:
                    received = record(session)
        except IntakeError as exc:
            self._set_aside(entry, partner_id)
            raise IngestRefused(str(exc)) from exc
        self._publish(received)
        self._remove(entry)
        return Ingested(received.message_id, blob.size, blob.sha256)

    def _archive(self, spooled: Path, known: BlobRef | None) -> BlobRef:
        if known is not None and (self.max_bytes is None or known.size <= self.max_bytes):
            try:
                return self.blobs.adopt(spooled, known)  # its bytes were fsynced at the close
            except OSError as exc:  # another filesystem, or no hard links there: copy instead
                log.debug("cannot link %s into the archive (%s); copying", spooled, exc)
        return self.blobs.put_stream(_chunks(spooled), max_bytes=self.max_bytes)

    def _publish(self, received: Received) -> None:
        if self.doorbell is not None:
            self.doorbell.ring(received)
        else:
            publish_received(self.db, self.publisher, received)

    def close(self) -> None:
        """Commit the closes still queued, then publish what the background doorbell holds."""
        if self.group is not None:
            self.group.stop()
        if self.doorbell is not None:
            self.doorbell.stop()

    def _remove(self, entry: Path) -> None:
        shutil.rmtree(entry, ignore_errors=True)

    def _set_aside(self, entry: Path, partner_id: str) -> None:
        target = self.layout.rejected / partner_id / entry.name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(entry, target)
        log.warning("upload %s set aside in %s", entry.name, target)

    def pending(self) -> list[tuple[str, Path]]:
        """Every spooled upload waiting for intake, as (partner id, file path)."""
        found: list[tuple[str, Path]] = []
        if not self.layout.spool.is_dir():
            return found
        for partner_dir in sorted(self.layout.spool.iterdir()):
            if not partner_dir.is_dir() or partner_dir.is_symlink():
                continue
            for entry in sorted(partner_dir.iterdir()):
                files = [p for p in entry.iterdir() if p.is_file() and not p.is_symlink()] \
                    if entry.is_dir() and not entry.is_symlink() else []
                if files:
                    found.append((partner_dir.name, files[0]))
                elif entry.is_dir() and time.time() - entry.stat().st_mtime > 60:
                    shutil.rmtree(entry, ignore_errors=True)  # a crash between mkdir and rename
        return found

    def recover(self) -> int:
        """Ingest every spooled upload left behind (after a crash or a failed intake); returns how many."""
        done = 0
        for partner_id, path in self.pending():
            try:
                self.ingest(path, partner_id=partner_id, username=None)
                done += 1
            except (SpoolBusy, IngestRefused):
                continue
            except Exception:
                log.exception("recovery of %s failed; will retry", path)
        return done
