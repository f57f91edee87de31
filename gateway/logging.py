"""Structured JSON logs with correlation ids, and the request middleware that sets them.

Every log line is one JSON object: ``ts``, ``level``, ``logger``, ``message``,
``correlation_id`` (from the context variable) and any ``extra=`` fields. Values under keys
that name secrets (authorization, password, secret, token, key …) are replaced by ``"***"``,
and API keys, webhook secrets and bearer tokens are scrubbed from messages.

The request middleware takes the correlation id from ``X-Correlation-Id`` (when it is a
sane token) or generates one, sets it for the request, echoes it in the response header and
logs one access line (method, path, status, duration, actor) — never headers or query strings.
Workers use :func:`correlation_scope` around a task.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = "X-Correlation-Id"
_correlation_id: ContextVar[str | None] = ContextVar("edigate_correlation_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_SECRET_KEY = re.compile(r"authorization|password|passwd|secret|token|api_?key|private_?key|cookie",
                         re.IGNORECASE)
_SECRET_TEXT = re.compile(r"(edg_[A-Za-z0-9_-]{8,}|whsec_[A-Za-z0-9+/=]{8,}|(?i:bearer)\s+\S+)")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_MARK = "_edigate_json_handler"
REDACTED = "***"
access_log = logging.getLogger("edigate.access")
error_log = logging.getLogger("edigate.api")


def current_correlation_id() -> str | None:
    """The correlation id of the request or task being handled, if any."""
    return _correlation_id.get()


def new_correlation_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


def accept_correlation_id(value: str | None) -> str:
    """``value`` when it is a sane id (1 to 64 of ``A-Za-z0-9._:-``), else a new one."""
    if value and _VALID_ID.match(value):
        return value
    return new_correlation_id()


@contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Run a block with a correlation id set (a new one when None); yields the id."""
    value = correlation_id or new_correlation_id()
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)


def redact(value: Any, key: str = "") -> Any:
    """``value`` with secret-named keys masked and secret-looking text scrubbed."""
    if key and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def scrub(text: str) -> str:
    """``text`` with API keys, webhook secrets and bearer tokens replaced by ``"***"``."""
    return _SECRET_TEXT.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "correlation_id": getattr(record, "correlation_id", None) or current_correlation_id(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and name not in entry and not name.startswith("_"):
                entry[name] = redact(value, name)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str | int = "INFO") -> None:
    """Send every log record to stderr as JSON lines (idempotent; uvicorn's loggers included)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The middleware writes the access line (with correlation id); uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True


class RequestLoggingMiddleware:
    """Sets the correlation id per request, echoes it, and logs one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-correlation-id":
                incoming = value.decode("latin-1")
        correlation_id = accept_correlation_id(incoming)
        status = 500
        started = time.perf_counter()

        started_response = False

        async def send_with_header(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((CORRELATION_HEADER.lower().encode(), correlation_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        token = _correlation_id.set(correlation_id)
        try:
            await self.app(scope, receive, send_with_header)
        except Exception:
            # Answered here, inside the correlation scope, rather than by Starlette's outer
            # ServerErrorMiddleware (which runs after the scope ended and adds no header).
            error_log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started_response:
                raise
            await _send_internal_error(send_with_header, correlation_id)
        finally:
            state = scope.get("state") or {}
            access_log.info(
                "%s %s %s", scope.get("method"), scope.get("path"), status,
                extra={"method": scope.get("method"), "path": scope.get("path"), "status": status,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                       "actor": state.get("actor"), "correlation_id": correlation_id},
            )
            _correlation_id.reset(token)


async def _send_internal_error(send: Send, correlation_id: str) -> None:
    body = json.dumps({"error": {"code": "internal_error", "message": "unexpected error; see the server log",
                                 "details": {"correlation_id": correlation_id}}}).encode()
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def install_request_logging(app: Any) -> None:
    """Add the correlation-id and access-log middleware to a Starlette/FastAPI app."""
    app.add_middleware(RequestLoggingMiddleware)
