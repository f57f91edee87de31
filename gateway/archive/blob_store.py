"""A content-addressed, immutable blob store on the local filesystem.

Layout: ``<root>/blobs/ab/cd/<sha256>`` (read-only files). A write streams into a temporary
file under ``<root>/blobs/.tmp`` (same filesystem), hashing as it goes; on commit the file is
fsynced and made read-only. Writing bytes that are already stored is a no-op. Nothing ever
holds a whole blob in memory.

Every blob is *staged* before it is placed: its fsynced file gets the name
``<sha256>.<random>.staged`` in ``.tmp``, one fsync of ``.tmp`` makes the names of a whole
batch durable at once, and only then are the files renamed into place, without more fsyncs
(nor any for new prefix directories). A rename is atomic, so after a crash each blob is under
one of its two names; ``open`` finds a staged one (checking its hash) and moves it into place,
and so does a new ``BlobStore`` for staged files older than a minute (it also deletes other
temporary files older than a day: a crashed writer's). A batch of N small blobs
(``put_many``) costs N + 1 fsyncs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
COMMIT_THREADS = 8  # put_many's parallel commits
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_READ_ONLY = 0o444
_STAGED = ".staged"
STAGED_RECOVERY_AGE_SECONDS = 60.0  # younger staged files may belong to a writer still at work


class ArchiveError(Exception):
    """Base of the archive's errors."""


class BlobNotFound(ArchiveError):
    """No blob is stored under that hash."""


class BlobTooLarge(ArchiveError):
    """The stream exceeded the size limit given to the writer."""


class InvalidBlobHash(ArchiveError):
    """The string is not a lowercase hex SHA-256."""


@dataclass(frozen=True)
class BlobRef:
    """What the database keeps of a blob: its hash and size."""

    sha256: str
    size: int


@dataclass(frozen=True)
class BlobProblem:
    """A stored blob that is missing or whose bytes no longer match its hash or size."""

    sha256: str
    reason: str

    def __str__(self) -> str:
        return f"blob {self.sha256}: {self.reason}"


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(sha256: str) -> str:
    if not _SHA256_RE.match(sha256):
        raise InvalidBlobHash(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: str, data: bytes) -> None:
    """Create ``path`` with ``data``, fsynced and read-only (its name is not yet durable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.fchmod(fd, _READ_ONLY)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def _discard(staged: dict[str, str]) -> None:
    """Remove staged blobs that will not be published."""
    for path in staged.values():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _move_into_place(staged: str, final: Path) -> None:
    """Rename a staged blob to its path; no fsync: the staged name is durable already."""
    try:
        os.replace(staged, final)
    except FileNotFoundError:
        if not os.path.exists(staged):
            if final.is_file():  # a reader's recovery moved it meanwhile
                return
            raise
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)


class BlobWriter:
    """Receives chunks, then ``commit()`` publishes the blob; ``abort()`` discards it."""

    def __init__(self, store: BlobStore, *, max_bytes: int | None = None) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self._size = 0
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="incoming-")
        self._tmp_path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raises ``BlobTooLarge`` past the limit (and discards the blob)."""
        if self._file is None:
            raise ArchiveError("writer is closed")
        self._size += len(chunk)
        if self._max_bytes is not None and self._size > self._max_bytes:
            self.abort()
            raise BlobTooLarge(f"blob exceeds {self._max_bytes} bytes")
        self._digest.update(chunk)
        self._file.write(chunk)

    def commit(self) -> BlobRef:
        """Make the blob durable and visible under its hash; idempotent for known content."""
        ref, staged = self.stage()
        if staged is not None:
            self._store.publish({ref.sha256: staged})
        return ref

    def stage(self) -> tuple[BlobRef, str | None]:
        """Fsync the blob under a staging name for ``BlobStore.publish``; None for known content."""
        if self._file is None:
            raise ArchiveError("writer is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        ref = BlobRef(sha256=self._digest.hexdigest(), size=self._size)
        if self._store.path_for(ref.sha256).exists():
            self._tmp_path.unlink(missing_ok=True)
            return ref, None
        os.chmod(self._tmp_path, _READ_ONLY)
        staged = self._store.staged_path(ref.sha256)
        os.replace(self._tmp_path, staged)
        return ref, staged

    def abort(self) -> None:
        """Discard what was written."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self.abort()


class BlobBatch:
    """Blobs written one after the other and made durable together, by one sync, when the
    ``with`` block ends (nothing is kept if it raises); use their refs only after it."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._staged: dict[str, str] = {}

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int | None = None) -> BlobRef:
        """Stage the concatenated chunks."""
        with self._store.writer(max_bytes=max_bytes) as writer:
            for chunk in chunks:
                writer.write(chunk)
            ref, staged = writer.stage()
        if staged is not None:
            self._keep(ref.sha256, staged)
        return ref

    def put_bytes(self, data: bytes) -> BlobRef:
        """Stage a small byte string."""
        return self.put_many([data])[0]

    def put_many(self, items: Sequence[bytes]) -> list[BlobRef]:
        """Stage several small byte strings; their refs in order (known content is not written again).

        The bytes are at hand, so hashes come first and files are written with plain ``os``
        calls (about a third less CPU than a streaming writer's file object), side by side
        when there are several, so their fsyncs share the filesystem's journal commits.
        """
        refs = [BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data)) for data in items]
        new: dict[str, bytes] = {}
        for ref, data in zip(refs, items, strict=True):
            sha = ref.sha256
            if sha not in new and sha not in self._staged and not self._store.path_for(sha).exists():
                new[sha] = data
        staged = {sha: self._store.staged_path(sha) for sha in new}
        self._staged.update(staged)  # before writing: if a write fails, the batch discards them all
        if len(staged) == 1:
            [(sha, path)] = staged.items()
            _write_durable(path, new[sha])
        elif staged:
            pool = self._store.committers()
            writes = [pool.submit(_write_durable, path, new[sha]) for sha, path in staged.items()]
            wait(writes)  # all of them finished before the batch discards anything
            for write in writes:
                write.result()
        return refs

    def _keep(self, sha256: str, staged: str) -> None:
        if sha256 in self._staged:  # the same bytes twice in one batch
            os.unlink(staged)
        else:
            self._staged[sha256] = staged

    def __enter__(self) -> BlobBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._store.publish(self._staged)
        else:
            _discard(self._staged)


class BlobStore:
    """The archive folder: ``put_stream`` in, ``open`` out, ``verify`` to audit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs"
        self.tmp_dir = self.blob_dir / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self.recover_staged()  # what a crashed process left: staged blobs in, day-old scraps out
        self.remove_stale_temp_files()

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this hash lives (whether or not it exists)."""
        _check_hash(sha256)
        return self.blob_dir / sha256[:2] / sha256[2:4] / sha256

    def writer(self, *, max_bytes: int | None = None) -> BlobWriter:
        """A writer for feeding chunks one by one (e.g. from an async request body)."""
        return BlobWriter(self, max_bytes=max_bytes)

    def batch(self) -> BlobBatch:
        """Several blobs made durable by one sync (see :class:`BlobBatch`)."""
        return BlobBatch(self)

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int | None = None) -> BlobRef:
        """Store the concatenated chunks and return their hash and size."""
        with self.batch() as batch:
            return batch.put_stream(chunks, max_bytes=max_bytes)

    def put_bytes(self, data: bytes) -> BlobRef:
        """Store a small byte string (MDNs, generated acks); known content is not written again."""
        return self.put_many([data])[0]

    def put_many(self, items: Sequence[bytes]) -> list[BlobRef]:
        """Store several small byte strings, in order; each is durable when this returns."""
        with self.batch() as batch:
            return batch.put_many(items)

    def staged_path(self, sha256: str) -> str:
        """A fresh staging name in ``.tmp`` for a blob with this hash."""
        return os.path.join(self.tmp_dir, f"{_check_hash(sha256)}.{os.urandom(6).hex()}{_STAGED}")

    def publish(self, staged: dict[str, str]) -> None:
        """Make staged blobs (fsynced files, by hash) durable with one sync, then move them in."""
        if not staged:
            return
        _fsync_dir(self.tmp_dir)  # every staged name is durable: the blobs are safe from here
        for sha256, path in staged.items():
            _move_into_place(path, self.path_for(sha256))

    def adopt(self, path: Path, ref: BlobRef) -> BlobRef:
        """Archive a durable file whose hash and size the caller computed, as a hard link (no copy).

        The file's bytes must already be fsynced and must never change again (it becomes
        read-only); ``OSError`` when it cannot be linked (another filesystem): copy it instead.
        """
        if self.path_for(ref.sha256).exists():
            return ref
        os.chmod(path, _READ_ONLY)
        staged = self.staged_path(ref.sha256)
        os.link(path, staged)
        self.publish({ref.sha256: staged})
        return ref

    def committers(self) -> ThreadPoolExecutor:
        """The threads a batch writes its small blobs on (made again after a fork)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():  # threads do not survive a fork
                self._pool = ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="blob-commit")
                self._pool_pid = os.getpid()
            return self._pool

    def exists(self, sha256: str) -> bool:
        """True if the blob is stored."""
        return self.path_for(sha256).is_file() or self._recover(sha256)

    def open(self, sha256: str) -> BinaryIO:
        """A binary reader positioned at the blob's first byte; the caller closes it."""
        final = self.path_for(sha256)
        try:
            return final.open("rb")
        except FileNotFoundError:
            if not self._recover(sha256):
                raise BlobNotFound(sha256) from None
        return final.open("rb")

    def _recover(self, sha256: str) -> bool:
        """Move a blob a crash left staged into place; False when there is none (intact)."""
        for candidate in self.tmp_dir.glob(f"{sha256}.*{_STAGED}"):
            if _hash_file(candidate) == sha256:
                _move_into_place(str(candidate), self.path_for(sha256))
                return True
        return False

    def recover_staged(self, *, older_than_seconds: float = STAGED_RECOVERY_AGE_SECONDS) -> int:
        """Move staged blobs a crash left behind into place, dropping torn ones; how many moved."""
        cutoff = time.time() - older_than_seconds
        moved = 0
        for entry in os.scandir(self.tmp_dir):
            sha256 = entry.name.split(".", 1)[0]
            if not entry.name.endswith(_STAGED) or not _SHA256_RE.match(sha256):
                continue
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
                if _hash_file(Path(entry.path)) == sha256:
                    _move_into_place(entry.path, self.path_for(sha256))
                    moved += 1
                else:  # torn by the crash before its fsync: put_many never returned it
                    os.unlink(entry.path)
            except FileNotFoundError:  # another process recovered it first
                continue
        return moved

    def iter_chunks(self, sha256: str, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks, for streaming responses."""
        with self.open(sha256) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def iter_hashes(self) -> Iterator[str]:
        """Every stored blob's hash (temporary files excluded)."""
        for path in sorted(self.blob_dir.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*")):
            if _SHA256_RE.match(path.name):
                yield path.name

    def remove_stale_temp_files(self, *, older_than_seconds: float = 24 * 3600) -> int:
        """Delete temporary files left by crashed writers; returns how many were removed."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.tmp_dir.iterdir():
            if path.name.endswith(_STAGED):  # a durable blob: recover_staged's business
                continue
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def check(self, ref: BlobRef | str) -> BlobProblem | None:
        """Recompute one blob's hash (and size, given a ref); None when it is intact."""
        sha256 = ref if isinstance(ref, str) else ref.sha256
        digest = hashlib.sha256()
        size = 0
        try:
            with self.open(sha256) as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
        except BlobNotFound:
            return BlobProblem(sha256, "missing from the archive")
        if digest.hexdigest() != sha256:
            return BlobProblem(sha256, f"content hashes to {digest.hexdigest()} (altered)")
        if isinstance(ref, BlobRef) and size != ref.size:
            return BlobProblem(sha256, f"size is {size}, catalogued as {ref.size}")
        return None

    def verify(self, refs: Iterable[BlobRef | str] | None = None) -> list[BlobProblem]:
        """Recompute every hash (of ``refs``, or of every stored blob)."""
        targets: Iterable[BlobRef | str] = self.iter_hashes() if refs is None else refs
        return [problem for ref in targets if (problem := self.check(ref)) is not None]
