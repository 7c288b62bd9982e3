"""Errors raised by the gateway's business rules, mapped to HTTP by handlers/base.py."""

from __future__ import annotations


class GatewayError(Exception):
    """A client-facing error: ``status`` and ``code`` become the JSON error body."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class ValidationError(GatewayError):
    code = "validation_error"

    @classmethod
    def of(cls, field: str, problem: str) -> ValidationError:
        return cls(f"{field}: {problem}", {field: [problem]})


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class WindowClosed(Conflict):
    """Free-form text cannot reach the contact now: the provider's reply window is shut."""

    code = "window_closed"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class TooManyRequests(GatewayError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class BadGateway(GatewayError):
    """A provider failed at something the gateway asked it on an agent's behalf."""

    status = 502
    code = "bad_gateway"


def error_for(status: int, message: str) -> GatewayError:
    """The client error for an HTTP status chosen elsewhere (a channel's refusal)."""
    for kind in (Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, BadGateway):
        if kind.status == status:
            return kind(message)
    return GatewayError(message)
