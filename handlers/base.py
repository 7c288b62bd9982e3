"""The base handler: JSON in, JSON out, and one error shape for every failure.

Every error leaves as ``{"error": {"code", "message", "fields"?}}`` with no stack
trace; area handlers raise :class:`gateway.errors.GatewayError` or
``tornado.web.HTTPError`` and never format errors themselves.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from tornado.web import HTTPError, RequestHandler

from gateway.errors import GatewayError
from storage.errors import StorageUnavailable

if TYPE_CHECKING:
    from gateway.app import Services

log = logging.getLogger("gateway.http")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


class BaseHandler(RequestHandler):
    """Owns JSON parsing and the error shape; subclasses implement HTTP methods."""

    services: Services

    def initialize(self, services: Services) -> None:
        self.services = services
        services.inflight.enter()  # left in on_finish, which Tornado always reaches

    def on_finish(self) -> None:
        self.services.inflight.leave()

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload, default=_json_default, ensure_ascii=False))

    def send_error_body(
        self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if fields:
            error["fields"] = fields
        self.clear()
        self.set_default_headers()
        self.write_json({"error": error}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, GatewayError):
            self.send_error_body(exc.status, exc.code, exc.message, exc.fields)
        elif isinstance(exc, StorageUnavailable):
            self.send_error_body(503, "unavailable", "the database is unavailable; retry later")
        elif isinstance(exc, HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
            self.send_error_body(status_code, _code(status_code), message)
        else:
            # 5xx and anything unexpected: a generic sentence, details only in the log.
            self.send_error_body(status_code, _code(status_code), _reason(status_code))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Expected client errors are not worth a traceback in the log.
        if isinstance(value, GatewayError | HTTPError):
            return
        if isinstance(value, StorageUnavailable):
            log.warning("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


class NotFoundHandler(BaseHandler):
    """The catch-all: an unknown path is a JSON 404, whatever the method."""

    def prepare(self) -> None:
        raise HTTPError(404, "No such resource: %s", self.request.path)


def _code(status: int) -> str:
    return _CODES.get(status, "server_error" if status >= 500 else "error")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _json_default(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if isoformat is not None:
        return isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")
