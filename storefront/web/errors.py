"""JSON errors for every failure: the contract's error shape, no tracebacks, nothing cached."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from storefront.store import StoreUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
MAX_BODY_BYTES = 256 * 1024

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as ``{"error", "message", "fields"}`` with the given status."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None,
                 code: str | None = None, cache_control: str = "no-store") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.code = code or _CODES.get(status, "error")
        self.cache_control = cache_control


def read_body_limited() -> bytes:
    """The request body, or a 413 when it is longer than 256 KiB however it is framed."""
    from flask import request

    raw = request.get_data(cache=True)  # werkzeug raises 413 past MAX_CONTENT_LENGTH
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "request body is larger than 256 KiB", {"body": "larger than 256 KiB"})
    return raw


def error_response(status: int, message: str, fields: dict[str, str] | None = None,
                   code: str | None = None, cache_control: str = "no-store") -> Response:
    body: dict[str, Any] = {"error": code or _CODES.get(status, "error"), "message": message,
                            "fields": fields or {}}
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = cache_control
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="storefront-admin"'
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, error.fields, error.code, error.cache_control)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = {
            404: "no such resource",
            405: "method not allowed",
            413: "request body is larger than 256 KiB",
        }.get(status, error.description or "error")
        fields = {"body": "larger than 256 KiB"} if status == 413 else {}
        response = error_response(status, message, fields)
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(StoreUnavailable)
    def _store_down(error: StoreUnavailable) -> Response:
        log.warning("database unavailable: %s", error)
        return error_response(503, "the database is unavailable; try again shortly")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # The traceback goes to the log, never to the client.
        log.exception("unhandled error")
        return error_response(500, "internal error")
