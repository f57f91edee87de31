"""The archive: search messages, read their tree, raw bytes, timeline and documents; replay."""

from gateway.messages.errors import (
    AccessDenied,
    ArchiveContentMissing,
    ArchiveQueryError,
    DocumentNotFound,
    MessageNotFound,
    NotFound,
    ReplayNotAllowed,
)
from gateway.messages.schemas import MessageQuery
from gateway.messages.service import (
    get_document,
    get_message,
    message_timeline,
    open_raw_content,
    replay_message,
    search_messages,
)

__all__ = [
    "AccessDenied",
    "ArchiveContentMissing",
    "ArchiveQueryError",
    "DocumentNotFound",
    "MessageNotFound",
    "MessageQuery",
    "NotFound",
    "ReplayNotAllowed",
    "get_document",
    "get_message",
    "message_timeline",
    "open_raw_content",
    "replay_message",
    "search_messages",
]
