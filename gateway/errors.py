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


class NotFound(GatewayError):
    status = 404
    code = "not_found"
