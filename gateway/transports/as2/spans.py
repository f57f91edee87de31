"""Byte ranges over memory or a file, and spools to write them: how a 50 MB body is never held twice.

A ``Span`` is a window ``[start, end)`` on bytes or on a seekable binary file; slicing one makes
another window on the same source, never a copy. Layers of an AS2 body (decrypted content,
decompressed content, a decoded transfer encoding) are written to a ``Spool``, which stays in
memory while small and moves to an anonymous temporary file past ``SPOOL_MEMORY`` bytes.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

CHUNK = 1024 * 1024
SPOOL_MEMORY = 1024 * 1024


class Span:
    """A read-only window on bytes or on a binary file (the file is shared, reads seek first)."""

    __slots__ = ("_data", "_file", "end", "start")

    def __init__(self, data: bytes | None, file: IO[bytes] | None, start: int, end: int) -> None:
        self._data = data
        self._file = file
        self.start = start
        self.end = end

    @classmethod
    def of(cls, data: bytes) -> Span:
        """All of ``data``."""
        return cls(data, None, 0, len(data))

    @classmethod
    def of_file(cls, file: IO[bytes], start: int = 0, end: int | None = None) -> Span:
        """``[start, end)`` of an open binary file (to its end by default)."""
        if end is None:
            end = file.seek(0, 2)
        return cls(None, file, start, end)

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def in_memory(self) -> bool:
        """True when the bytes are in memory (reading all of them costs no I/O)."""
        return self._data is not None

    def sub(self, start: int, end: int | None = None) -> Span:
        """The window ``[start, end)`` relative to this one (clamped to it)."""
        size = len(self)
        lo = min(max(start, 0), size)
        hi = size if end is None else min(max(end, lo), size)
        return Span(self._data, self._file, self.start + lo, self.start + hi)

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """The bytes of ``[start, end)`` relative to this window (a copy; keep it small)."""
        window = self.sub(start, end)
        if window._data is not None:
            if window.start == 0 and window.end == len(window._data):
                return window._data
            return window._data[window.start : window.end]
        assert window._file is not None
        window._file.seek(window.start)
        return window._file.read(len(window))

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        """The window's bytes, ``size`` (default ``CHUNK``) at a time."""
        size = size or CHUNK
        if self._data is not None and len(self) <= size:
            if len(self):
                yield self.read()
            return
        position = self.start
        while position < self.end:
            step = min(size, self.end - position)
            yield self.sub(position - self.start, position - self.start + step).read()
            position += step

    def find(self, needle: bytes, start: int = 0) -> int:
        """The first offset (relative) of ``needle`` at or after ``start``, or -1."""
        if self._data is not None:
            index = self._data.find(needle, self.start + start, self.end)
            return index - self.start if index >= 0 else -1
        overlap, step = len(needle) - 1, CHUNK
        position = start
        while position < len(self):
            block = self.read(position, position + step + overlap)
            index = block.find(needle)
            if index >= 0:
                return position + index
            if position + len(block) >= len(self):
                return -1
            position += step
        return -1

    def startswith(self, prefix: bytes) -> bool:
        """Whether the window begins with ``prefix``."""
        return self.read(0, len(prefix)) == prefix

    def digest(self, name: str) -> bytes:
        """The hashlib digest ``name`` of the window's bytes, streamed."""
        hasher = hashlib.new(name)
        for chunk in self.chunks():
            hasher.update(chunk)
        return hasher.digest()

    def same_bytes(self, other: Span) -> bool:
        """Whether two windows hold the same bytes (compared a chunk at a time)."""
        if len(self) != len(other):
            return False
        step = CHUNK
        return all(
            self.read(position, position + step) == other.read(position, position + step)
            for position in range(0, len(self), step)
        )


class Spool:
    """Write bytes, then read them back as a ``Span``: in memory while small, else a temporary file.

    ``close()`` deletes the file; the spans read from a spool are valid until then.
    """

    def __init__(self, directory: Path | None = None, *, memory: int | None = None) -> None:
        self._directory = directory
        self._memory = SPOOL_MEMORY if memory is None else memory
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        """Append ``data`` (to a temporary file once the spool outgrows its memory)."""
        if self._file is None and len(self._buffer) + len(data) <= self._memory:
            self._buffer += data
        else:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115 - closed by close()
                self._file.write(self._buffer)
                self._buffer = bytearray()
            self._file.write(data)
        self._size += len(data)

    def truncate(self) -> None:
        """Forget everything written (to start again)."""
        self._buffer = bytearray()
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
        self._size = 0

    def span(self) -> Span:
        """What was written, as a window (memory-backed while the spool stayed small)."""
        if self._file is None:
            return Span.of(bytes(self._buffer))
        self._file.flush()
        return Span.of_file(self._file, 0, self._size)

    def close(self) -> None:
        """Release the memory and delete the temporary file."""
        self._buffer = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
