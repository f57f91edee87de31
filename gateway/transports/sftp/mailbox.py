"""What a logged-in partner can do in its mailbox: the SFTP operations on its two folders.

``/inbound`` accepts uploads only: a file under a final name is written out of sight and, when
the partner closes it, spooled and taken through intake before the close is answered; a file
under a temporary name (``.part``/``.tmp``/``.filepart``) stays visible until the partner
renames it to a final name, which triggers the same intake. ``/outbound`` is read and delete
only. Nothing follows a symlink, nothing outside the two folders exists, every refusal and
every file event is audited.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
from sqlalchemy import select

from gateway.archive.blob_store import BlobRef
from gateway.store.enums import Transport
from gateway.store.models import Message
from gateway.transports.sftp._ssh import (
    CMD_CLOSE,
    CMD_NAME,
    CMD_REALPATH,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)
from gateway.transports.sftp.accounts import Account
from gateway.transports.sftp.audit import record_event
from gateway.transports.sftp.ingest import IngestRefused
from gateway.transports.sftp.paths import (
    FOLDERS,
    INBOUND,
    OUTBOUND,
    PathRefused,
    VirtualPath,
    canonical_path,
    is_temporary_name,
    open_no_follow,
    parse_virtual_path,
)

if TYPE_CHECKING:
    from gateway.transports.sftp.server import HostedSftpServer

log = logging.getLogger("edigate.sftp.mailbox")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
RECENT_UPLOADS = 200


def hosted_remote_id(username: str, name: str) -> str:
    """The id a file we dropped into an account's ``outbound/`` is known by (message receipts)."""
    return f"sftp-hosted:{username}/{OUTBOUND}/{name}"


@dataclass
class Connection:
    """One partner connection: who, from where, and when it last asked for something."""

    server: HostedSftpServer
    address: str
    account: Account | None = None
    method: str = ""
    key: paramiko.PKey | None = None
    last_activity: float = field(default_factory=time.monotonic)
    files_received: int = 0
    recent: dict[str, paramiko.SFTPAttributes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def touch(self) -> None:
        """Note activity (resets the idle timer)."""
        self.last_activity = time.monotonic()

    @property
    def username(self) -> str:
        """The logged-in account's username."""
        assert self.account is not None
        return self.account.username

    @property
    def partner_id(self) -> str:
        """The logged-in account's partner."""
        assert self.account is not None
        return self.account.partner_id

    def audit(self, event_type: str, **data: Any) -> None:
        """Record an event for this connection's account."""
        record_event(self.server.db, event_type, username=self.account.username if self.account else None,
                     partner_id=self.account.partner_id if self.account else None,
                     address=self.address, **data)

    def remember_upload(self, name: str, size: int) -> None:
        """Let ``stat`` of a just-received name answer (clients check the size after an upload)."""
        attrs = paramiko.SFTPAttributes()
        attrs.filename, attrs.st_size, attrs.st_mode = name, size, stat.S_IFREG | 0o600
        attrs.st_mtime = attrs.st_atime = int(time.time())
        with self.lock:
            self.recent[name] = attrs
            while len(self.recent) > RECENT_UPLOADS:
                self.recent.pop(next(iter(self.recent)))

    def complete_upload(self, written: Path, name: str, known: BlobRef | None = None
                        ) -> tuple[int, str | None]:
        """Spool a finished upload and take it through intake; the SFTP status to answer.

        ``known``: the upload's hash and size, computed while it was written.
        """
        try:
            result = self.server.ingestor.receive(written, partner_id=self.partner_id, name=name,
                                                  username=self.username, address=self.address, known=known)
        except IngestRefused as exc:
            self.audit("sftp.upload_refused", filename=name, reason=str(exc))
            return SFTP_PERMISSION_DENIED, f"upload refused: {exc}"
        except Exception:
            if written.exists():  # it never reached the spool: nothing was kept
                log.exception("spooling %s from %s failed", name, self.username)
                return SFTP_FAILURE, "upload failed; send it again"
            log.exception("intake of %s from %s failed; the spool recovery will retry", name, self.username)
            return SFTP_FAILURE, "upload kept, intake failed; do not resend"
        self.files_received += 1
        self.remember_upload(name, result.size)
        return SFTP_OK, None


def _dir_attrs(name: str) -> paramiko.SFTPAttributes:
    attrs = paramiko.SFTPAttributes()
    attrs.filename = name
    attrs.st_mode = stat.S_IFDIR | 0o700
    attrs.st_size = 0
    attrs.st_mtime = attrs.st_atime = int(time.time())
    attrs.st_uid = attrs.st_gid = 0
    return attrs


def _file_attrs(name: str, st: os.stat_result) -> paramiko.SFTPAttributes:
    attrs = paramiko.SFTPAttributes.from_stat(st, name)
    attrs.st_mode = stat.S_IFREG | 0o600
    attrs.st_uid = attrs.st_gid = 0
    return attrs


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class UploadHandle(paramiko.SFTPHandle):  # type: ignore[misc]
    """A file being uploaded into ``inbound/``.

    A final-name upload is a new file only this handle writes: while the client writes it in
    order (as clients do), it is hashed on the way, so intake need not read it again.
    """

    def __init__(self, conn: Connection, name: str, path: Path, fd: int, *, final: bool, flags: int) -> None:
        super().__init__(flags)
        self.conn, self.name, self.path, self.fd, self.final = conn, name, path, fd, final
        self.size = os.fstat(fd).st_size
        self.too_large = False
        self._closed = False
        self._digest = hashlib.sha256() if final else None
        self._hashed_to = 0

    def write(self, offset: int, data: bytes) -> int:
        """Write at ``offset``; past the size limit the upload fails and will be discarded."""
        end = offset + len(data)
        limit = self.conn.server.max_file_bytes
        if self.too_large or end > limit:
            self.too_large = True
            return SFTP_FAILURE
        _pwrite_all(self.fd, data, offset)
        self.size = max(self.size, end)
        if self._digest is not None:
            if offset == self._hashed_to:
                self._digest.update(data)
                self._hashed_to = end
            else:  # out of order or rewritten: intake hashes the file itself
                self._digest = None
        return SFTP_OK

    def _known(self) -> BlobRef | None:
        if self._digest is None or os.fstat(self.fd).st_size != self._hashed_to:
            return None
        return BlobRef(sha256=self._digest.hexdigest(), size=self._hashed_to)

    def read(self, offset: int, length: int) -> int:
        """Uploads cannot be read back."""
        return SFTP_PERMISSION_DENIED

    def stat(self) -> paramiko.SFTPAttributes | int:
        """The upload's current attributes."""
        return _file_attrs(self.name, os.fstat(self.fd))

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        """Attribute changes (times, modes) are accepted and ignored."""
        return SFTP_OK

    def finish(self) -> tuple[int, str | None]:
        """The client closed the handle: make the file durable and, if final, receive it."""
        if self._closed:
            return SFTP_OK, None
        self._closed = True
        try:
            os.fsync(self.fd)
            known = self._known()
        finally:
            os.close(self.fd)
        if self.too_large:
            self.path.unlink(missing_ok=True)
            limit = self.conn.server.max_file_bytes
            self.conn.audit("sftp.upload_refused", filename=self.name, reason=f"larger than {limit} bytes")
            return SFTP_FAILURE, f"file larger than the limit of {limit} bytes"
        if not self.final:
            return SFTP_OK, None
        return self.conn.complete_upload(self.path, self.name, known)

    def close(self) -> None:
        """The session ended with the handle open: the upload is incomplete and never processed."""
        if self._closed:
            return
        self._closed = True
        os.close(self.fd)
        if self.final:
            self.path.unlink(missing_ok=True)
            self.conn.audit("sftp.upload_abandoned", filename=self.name, size=self.size)


class DownloadHandle(paramiko.SFTPHandle):  # type: ignore[misc]
    """A file of ``outbound/`` being downloaded."""

    def __init__(self, conn: Connection, name: str, fd: int, flags: int) -> None:
        super().__init__(flags)
        self.conn, self.name, self.fd = conn, name, fd
        self.size = os.fstat(fd).st_size
        self.read_to = 0
        self._closed = False

    def read(self, offset: int, length: int) -> bytes | int:
        """Bytes at ``offset`` (empty at the end of the file)."""
        data = os.pread(self.fd, length, offset)
        self.read_to = max(self.read_to, offset + len(data))
        return data

    def write(self, offset: int, data: bytes) -> int:
        """``outbound/`` is read-only."""
        return SFTP_PERMISSION_DENIED

    def stat(self) -> paramiko.SFTPAttributes | int:
        """The file's attributes."""
        return _file_attrs(self.name, os.fstat(self.fd))

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        """``outbound/`` is read-only."""
        return SFTP_PERMISSION_DENIED

    def close(self) -> None:
        """Close; a complete read is audited as a download, linked to the message sent."""
        if self._closed:
            return
        self._closed = True
        os.close(self.fd)
        if self.read_to >= self.size:
            server, conn = self.conn.server, self.conn
            message_id = server.outbound_message_id(conn.partner_id, conn.username, self.name)
            record_event(self.conn.server.db, "sftp.file_downloaded", username=self.conn.username,
                         partner_id=self.conn.partner_id, message_id=message_id, address=self.conn.address,
                         filename=self.name, size=self.size)


class MailboxSftpServer(paramiko.SFTPServer):  # type: ignore[misc]
    """paramiko's SFTP subsystem, answering a close with the outcome of the upload's intake."""

    def _process(self, t: int, request_number: int, msg: Any) -> None:
        conn: Connection = self.server.conn
        conn.touch()
        if t == CMD_CLOSE:
            position = msg.packet.tell()
            handle = msg.get_binary()
            upload = self.file_table.get(handle)
            if isinstance(upload, UploadHandle):
                del self.file_table[handle]
                status, text = upload.finish()
                conn.touch()
                self._send_status(request_number, status, text)
                return
            msg.packet.seek(position)
        elif t == CMD_REALPATH:
            path = msg.get_text()
            try:
                resolved = canonical_path(path)
            except PathRefused as exc:
                conn.audit("sftp.path_refused", path=path[:500], operation="realpath", reason=str(exc))
                self._send_status(request_number, SFTP_PERMISSION_DENIED, "outside your home")
                return
            self._response(request_number, CMD_NAME, 1, resolved, "", paramiko.SFTPAttributes())
            return
        super()._process(t, request_number, msg)


class MailboxSftp(paramiko.SFTPServerInterface):  # type: ignore[misc]
    """The partner's view: ``/``, ``/inbound`` and ``/outbound`` over its directories on disk."""

    def __init__(self, server: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.conn: Connection = server.conn

    # --- helpers --------------------------------------------------------------------------

    def _parse(self, path: str, operation: str) -> VirtualPath | int:
        try:
            return parse_virtual_path(path)
        except PathRefused as exc:
            self.conn.audit("sftp.path_refused", path=path[:500], operation=operation, reason=str(exc))
            return SFTP_PERMISSION_DENIED

    def _refuse(self, vpath: VirtualPath | str, operation: str, reason: str) -> int:
        self.conn.audit("sftp.path_refused", path=str(vpath)[:500], operation=operation, reason=reason)
        return SFTP_PERMISSION_DENIED

    def _real(self, vpath: VirtualPath) -> Path:
        return self.conn.server.layout.real_path(self.conn.username, vpath)

    def _lstat_file(self, vpath: VirtualPath) -> os.stat_result | None:
        try:
            st = os.lstat(self._real(vpath))
        except OSError:
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    # --- reading the tree -----------------------------------------------------------------

    def canonicalize(self, path: str) -> str:
        """``realpath`` (refusals are answered by :class:`MailboxSftpServer`)."""
        return canonical_path(path)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        """``/`` lists the two folders; a folder lists its regular files (never symlinks)."""
        vpath = self._parse(path, "list")
        if isinstance(vpath, int):
            return vpath
        if vpath.is_root:
            return [_dir_attrs(name) for name in FOLDERS]
        if vpath.name is not None:
            return SFTP_NO_SUCH_FILE
        entries: list[paramiko.SFTPAttributes] = []
        with os.scandir(self._real(vpath)) as scan:
            for entry in scan:
                if entry.is_file(follow_symlinks=False):
                    entries.append(_file_attrs(entry.name, entry.stat(follow_symlinks=False)))
        return entries

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        """Attributes of the root, a folder or a regular file."""
        vpath = self._parse(path, "stat")
        if isinstance(vpath, int):
            return vpath
        if vpath.name is None:
            return _dir_attrs(vpath.folder or "/")
        st = self._lstat_file(vpath)
        if st is not None:
            return _file_attrs(vpath.name, st)
        if vpath.folder == INBOUND:
            with self.conn.lock:
                recent = self.conn.recent.get(vpath.name)
            if recent is not None:
                return recent
        return SFTP_NO_SUCH_FILE

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        """Same as ``stat``: symlinks are never shown."""
        return self.stat(path)

    # --- files ----------------------------------------------------------------------------

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        """Uploads into ``inbound/``, downloads from ``outbound/``; nothing else."""
        vpath = self._parse(path, "open")
        if isinstance(vpath, int):
            return vpath
        if vpath.name is None:
            return self._refuse(vpath, "open", "not a file")
        writing = bool(flags & _WRITE_FLAGS)
        if vpath.folder == OUTBOUND:
            if writing:
                return self._refuse(vpath, "open", "outbound/ is read-only")
            return self._open_download(vpath, flags)
        if not writing:
            return self._refuse(vpath, "open", "inbound/ is write-only")
        return self._open_upload(vpath, flags)

    def _open_download(self, vpath: VirtualPath, flags: int) -> paramiko.SFTPHandle | int:
        assert vpath.name is not None
        try:
            fd = open_no_follow(self._real(vpath), os.O_RDONLY)
        except FileNotFoundError:
            return SFTP_NO_SUCH_FILE
        except OSError as exc:  # ELOOP: a symlink
            return self._refuse(vpath, "open", f"not a regular file ({exc.strerror})")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return self._refuse(vpath, "open", "not a regular file")
        return DownloadHandle(self.conn, vpath.name, fd, flags)

    def _open_upload(self, vpath: VirtualPath, flags: int) -> paramiko.SFTPHandle | int:
        assert vpath.name is not None
        server = self.conn.server
        if is_temporary_name(vpath.name):
            path = self._real(vpath)
            open_flags = os.O_WRONLY | os.O_CREAT | (flags & (os.O_TRUNC | os.O_APPEND | os.O_EXCL))
            final = False
        else:
            path = server.layout.incoming(self.conn.username) / f"{uuid.uuid4().hex}.upload"
            open_flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            final = True
        try:
            fd = open_no_follow(path, open_flags, 0o600)
        except FileExistsError:
            return SFTP_FAILURE
        except OSError as exc:
            return self._refuse(vpath, "open", f"cannot write ({exc.strerror})")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return self._refuse(vpath, "open", "not a regular file")
        return UploadHandle(self.conn, vpath.name, path, fd, final=final, flags=flags)

    def remove(self, path: str) -> int:
        """Delete a downloaded file from ``outbound/``, or an unfinished temporary upload."""
        vpath = self._parse(path, "remove")
        if isinstance(vpath, int):
            return vpath
        if vpath.name is None:
            return self._refuse(vpath, "remove", "not a file")
        if vpath.folder == INBOUND and not is_temporary_name(vpath.name):
            return self._refuse(vpath, "remove", "only temporary uploads can be removed from inbound/")
        st = self._lstat_file(vpath)
        if st is None:
            return SFTP_NO_SUCH_FILE
        os.unlink(self._real(vpath))
        conn = self.conn
        message_id = (conn.server.outbound_message_id(conn.partner_id, conn.username, vpath.name)
                      if vpath.folder == OUTBOUND else None)
        record_event(self.conn.server.db, "sftp.file_deleted", username=self.conn.username,
                     partner_id=self.conn.partner_id, message_id=message_id, address=self.conn.address,
                     path=str(vpath), size=st.st_size)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        """Inside ``inbound/`` only: a temporary upload renamed to a final name is received."""
        old = self._parse(oldpath, "rename")
        new = self._parse(newpath, "rename")
        if isinstance(old, int) or isinstance(new, int):
            return SFTP_PERMISSION_DENIED
        if old.folder != INBOUND or new.folder != INBOUND or old.name is None or new.name is None:
            return self._refuse(new, "rename", "renames are allowed inside inbound/ only")
        if not is_temporary_name(old.name):
            return self._refuse(old, "rename", "only temporary uploads can be renamed")
        if self._lstat_file(old) is None:
            return SFTP_NO_SUCH_FILE
        if is_temporary_name(new.name):
            os.replace(self._real(old), self._real(new))
            return SFTP_OK
        status, _ = self.conn.complete_upload(self._real(old), new.name)
        return status

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        """Same as ``rename``."""
        return self.rename(oldpath, newpath)

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        """The tree is fixed."""
        return self._refuse(path, "mkdir", "folders cannot be created")

    def rmdir(self, path: str) -> int:
        """The tree is fixed."""
        return self._refuse(path, "rmdir", "folders cannot be removed")

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        """Attribute changes are accepted and ignored on files that exist."""
        vpath = self._parse(path, "setstat")
        if isinstance(vpath, int):
            return vpath
        return SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        """Symlinks are never created."""
        return self._refuse(path, "symlink", f"symlinks are not allowed (target {target_path[:200]!r})")

    def readlink(self, path: str) -> str | int:
        """There are no symlinks to read."""
        return SFTP_OP_UNSUPPORTED


def outbound_message_id(db: Any, partner_id: str, username: str, name: str) -> uuid.UUID | None:
    """The outbound message we dropped into ``outbound/NAME`` (for the download/delete events)."""
    with db.unit_of_work(read_only=True) as session:
        found: uuid.UUID | None = session.scalars(select(Message.id).where(
            Message.partner_id == partner_id, Message.transport == Transport.SFTP,
            Message.transport_message_id == hosted_remote_id(username, name),
        ).order_by(Message.received_at.desc()).limit(1)).first()
        return found
