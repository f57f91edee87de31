"""Hosted mailboxes on disk, and the virtual paths a partner sees (pure path logic).

Disk layout under ``<data_dir>/sftp``::

    home/<username>/inbound/    what the partner uploads (only temporary names stay here)
    home/<username>/outbound/   what we send the partner (855/856/810/997/999) to download
    incoming/<username>/        uploads under a final name while they are written (invisible)
    staging/<username>/         files we are writing before they appear in outbound/
    spool/<partner>/<id>/NAME   complete uploads waiting for intake (crash recovery starts here)
    rejected/<partner>/<id>/NAME  uploads intake refused (partner unknown or suspended)

A partner sees ``/`` (its home) with exactly two folders, ``/inbound`` and ``/outbound``, each
holding plain files. Anything else — ``..`` components, deeper paths, other top-level names,
control characters — is refused before the disk is touched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.settings import Settings

INBOUND: Literal["inbound"] = "inbound"
OUTBOUND: Literal["outbound"] = "outbound"
FOLDERS = (INBOUND, OUTBOUND)
TEMPORARY_SUFFIXES = (".part", ".tmp", ".filepart")
MAX_NAME = 255
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")

Folder = Literal["", "inbound", "outbound"]


class PathRefused(Exception):
    """A path a partner may not use (escapes its home, or names something that cannot exist)."""


@dataclass(frozen=True)
class VirtualPath:
    """A parsed partner path: the root, a folder, or a file in a folder."""

    folder: Folder
    name: str | None = None

    @property
    def is_root(self) -> bool:
        """True for ``/``."""
        return self.folder == ""

    @property
    def is_folder(self) -> bool:
        """True for ``/inbound`` or ``/outbound``."""
        return self.folder != "" and self.name is None

    def __str__(self) -> str:
        if self.is_root:
            return "/"
        return f"/{self.folder}" + (f"/{self.name}" if self.name else "")


def is_temporary_name(name: str) -> bool:
    """True for upload names a client renames when done (``.part``, ``.tmp``, ``.filepart``)."""
    return name.lower().endswith(TEMPORARY_SUFFIXES)


def check_file_name(name: str) -> str:
    """The name itself if it is a plain file name, else ``PathRefused``."""
    if not name or name in (".", "..") or len(name.encode("utf-8")) > MAX_NAME or _BAD_CHARS.search(name):
        raise PathRefused(f"not a valid file name: {name!r}")
    return name


def _parts(path: str) -> list[str]:
    if "\x00" in path:
        raise PathRefused("NUL in path")
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def parse_virtual_path(path: str) -> VirtualPath:
    """Parse a partner's path (absolute or relative to ``/``); ``..`` anywhere is refused."""
    parts = _parts(path)
    if ".." in parts:
        raise PathRefused(f"'..' is not allowed: {path!r}")
    if not parts:
        return VirtualPath("")
    folder = parts[0]
    if folder == INBOUND:
        top: Folder = INBOUND
    elif folder == OUTBOUND:
        top = OUTBOUND
    else:
        raise PathRefused(f"no such folder: /{folder}")
    if len(parts) == 1:
        return VirtualPath(top)
    if len(parts) > 2:
        raise PathRefused(f"no sub-folders in /{folder}")
    return VirtualPath(top, check_file_name(parts[1]))


def canonical_path(path: str) -> str:
    """``realpath``: ``.`` and ``..`` resolved lexically inside the home; leaving it is refused."""
    stack: list[str] = []
    for part in _parts(path):
        if part == "..":
            if not stack:
                raise PathRefused(f"outside the home: {path!r}")
            stack.pop()
        else:
            stack.append(part)
    return "/" + "/".join(stack)


class MailboxLayout:
    """Where each part of the hosted SFTP area lives on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: Settings) -> MailboxLayout:
        """The layout under ``<data_dir>/sftp``."""
        return cls(settings.data_dir.resolve() / "sftp")

    @staticmethod
    def check_username(username: str) -> str:
        """The username if it is safe as a directory name, else ``PathRefused``."""
        if not _USERNAME.match(username):
            raise PathRefused(f"not a valid SFTP username: {username!r}")
        return username

    def home(self, username: str) -> Path:
        """The account's home (its ``/``)."""
        return self.root / "home" / self.check_username(username)

    def folder(self, username: str, folder: Literal["inbound", "outbound"]) -> Path:
        """``inbound`` or ``outbound`` of the account."""
        return self.home(username) / folder

    def incoming(self, username: str) -> Path:
        """Where final-name uploads are written until closed."""
        return self.root / "incoming" / self.check_username(username)

    def staging(self, username: str) -> Path:
        """Where outbound files are written before they are renamed into ``outbound/``."""
        return self.root / "staging" / self.check_username(username)

    @property
    def spool(self) -> Path:
        """Complete uploads waiting for intake."""
        return self.root / "spool"

    @property
    def rejected(self) -> Path:
        """Uploads intake refused."""
        return self.root / "rejected"

    def real_path(self, username: str, vpath: VirtualPath) -> Path:
        """The disk path of a parsed virtual path."""
        if vpath.is_root:
            return self.home(username)
        base = self.folder(username, INBOUND if vpath.folder == INBOUND else OUTBOUND)
        return base / vpath.name if vpath.name else base

    def ensure(self, username: str) -> None:
        """Create the account's folders (0700); refuse if any of them is a symlink."""
        for path in (self.home(username), self.folder(username, INBOUND), self.folder(username, OUTBOUND),
                     self.incoming(username), self.staging(username), self.spool, self.rejected):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            if path.is_symlink():
                raise PathRefused(f"{path} is a symlink")


def open_no_follow(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that never follows a symlink in the last component."""
    return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
