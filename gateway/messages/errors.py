"""The archive service's errors; the API maps each to its status code."""

from __future__ import annotations


class ArchiveQueryError(Exception):
    """Base of the archive search and replay errors."""


class NotFound(ArchiveQueryError, LookupError):
    """The message or document does not exist."""


class MessageNotFound(NotFound):
    """No message with that id."""


class DocumentNotFound(NotFound):
    """No document with that id."""


class AccessDenied(ArchiveQueryError):
    """The row belongs to another partner than the caller's."""


class ArchiveContentMissing(ArchiveQueryError):
    """The message row exists but its bytes are missing from the archive."""


class ReplayNotAllowed(ArchiveQueryError, ValueError):
    """The replay options do not apply to this message."""
