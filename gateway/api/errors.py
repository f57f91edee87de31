"""The API's error envelope: ``{"error": {"code", "message", "details"}}`` with the right status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.keyset import InvalidCursor
from gateway.logging import current_correlation_id

log = logging.getLogger("edigate.api")


class ApiError(Exception):
    """An error the API answers with its own status, code and message."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": {"code": code, "message": message, "details": details}}


def not_found(what: str, ident: object) -> ApiError:
    """A 404 naming what was not found."""
    return ApiError(404, "not_found", f"{what} {ident} not found")


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited"}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, including unexpected ones, in the error envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(InvalidCursor)
    async def _invalid_cursor(_: Request, exc: InvalidCursor) -> JSONResponse:
        return JSONResponse(error_body("invalid_cursor", str(exc)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg")}
                   for err in exc.errors()]
        return JSONResponse(error_body("validation_error", "the request is not valid", details),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        details = {"correlation_id": current_correlation_id()}
        return JSONResponse(error_body("internal_error", "unexpected error; see the server log", details),
                            status_code=500)
