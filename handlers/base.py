"""The base handler: authentication, JSON in and out, one error shape.

- Every method requires a Bearer token (an agent's access token or an API token)
  unless it is marked :func:`public`; ``make_app`` refuses to build with a handler
  that could bypass this. A GET needs an API token's ``read`` scope; every other
  method declares the scope it needs (:func:`needs`), or that it is for signed-in
  agents only (:func:`agents_only`), and ``make_app`` refuses one that does not.
- Bodies are read in streaming mode, so an oversized one is refused with a JSON
  413 before it is read (a handler taking uploads sets its own ``max_body`` and
  ``too_large``), and only ``application/json`` is accepted where JSON is expected
  (415).
- Every error leaves as ``{"error": {"code", "message", "fields"?}}`` with no stack
  trace; area handlers raise :class:`gateway.errors.GatewayError` or
  ``tornado.web.HTTPError`` and never format errors themselves.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import marshmallow
from tornado.httputil import HTTPServerRequest
from tornado.web import HTTPError, RequestHandler, stream_request_body

from common.wire import essence, load_json
from gateway.callers import Caller
from gateway.clients import client_address, is_local
from gateway.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from handlers.pagination import decode_cursor, page_response
from handlers.schemas import PageQuery
from storage.errors import DATABASE_ERRORS
from storage.lists import Page
from storage.models import Scope

if TYPE_CHECKING:
    from gateway.runtime import Services

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

# A username, a password or a refresh token, as JSON, with room to spare.
CREDENTIALS_BODY = 16 * 1024

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def public(reason: str) -> Callable[[F], F]:
    """Mark a handler method (or a whole handler) as callable without a token."""

    def mark(target: F) -> F:
        target.public_reason = reason  # type: ignore[attr-defined]
        return target

    return mark


# A caller's X-Request-ID is kept if it is a plain token (it goes into log lines);
# otherwise, or without one, the gateway makes one up.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Request-ID"
_EXPOSED = "Idempotent-Replayed, Retry-After, X-Request-ID, Allow"


def request_id(request: HTTPServerRequest) -> str:
    """The request's id: the caller's ``X-Request-ID`` or a new one; echoed back."""
    known = getattr(request, "gateway_request_id", None)
    if known is None:
        given = request.headers.get("X-Request-ID", "")
        known = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        setattr(request, "gateway_request_id", known)  # noqa: B010 - not a declared field
    return known


# What a method may need instead of a scope: a signed-in agent (their own account,
# their sign-in), which no API token is.
AGENTS_ONLY = "agents only"
_METHODS = ("get", "post", "put", "patch", "delete")


def needs(scope: Scope) -> Callable[[F], F]:
    """Mark a method with the scope an API token needs to call it."""

    def mark(target: F) -> F:
        target.scope = scope  # type: ignore[attr-defined]
        return target

    return mark


def agents_only(action: str) -> Callable[[F], F]:
    """Mark a method no API token may call; ``action`` says what it does."""

    def mark(target: F) -> F:
        target.scope = AGENTS_ONLY  # type: ignore[attr-defined]
        target.agents_only = action  # type: ignore[attr-defined]
        return target

    return mark


def scope_of(handler_class: type, method: str) -> Scope | str | None:
    """What calling ``method`` needs: a scope, :data:`AGENTS_ONLY`, or None (undeclared)."""
    declared: Scope | str | None = getattr(
        getattr(handler_class, method.lower(), None), "scope", None
    )
    return Scope.READ if declared is None and method.lower() == "get" else declared


def implements(handler_class: type, method: str) -> bool:
    """Whether the handler defines ``method`` itself (RequestHandler's answer 405)."""
    name = method.lower()
    return getattr(handler_class, name, None) is not getattr(RequestHandler, name, None)


def is_public(handler_class: type, method: str) -> bool:
    if getattr(handler_class, "public_reason", ""):
        return True
    return bool(getattr(getattr(handler_class, method.lower(), None), "public_reason", ""))


def check_handler_auth(handler_class: type) -> None:
    """Refuse to build an app with a handler that could skip authentication.

    Handlers must be :class:`BaseHandler` subclasses that keep its ``prepare``,
    unless the whole handler is marked :func:`public` with a reason.
    """
    if getattr(handler_class, "public_reason", ""):
        return
    if not issubclass(handler_class, BaseHandler):
        raise TypeError(f"{handler_class.__name__} is not a BaseHandler and not marked public")
    if handler_class.prepare is not BaseHandler.prepare:
        raise TypeError(f"{handler_class.__name__} overrides prepare(), which authenticates")
    for method in _METHODS:
        guarded = implements(handler_class, method) and not is_public(handler_class, method)
        if guarded and scope_of(handler_class, method) is None:
            raise TypeError(
                f"{handler_class.__name__}.{method} declares no scope: @needs or @agents_only"
            )


@stream_request_body
class BaseHandler(RequestHandler):
    """Owns auth, body parsing and the error shape; subclasses implement HTTP methods."""

    services: Services
    current_user: Caller | None
    # A route's own cap on its body, below server.max_body_bytes: the public routes
    # that take credentials read no more than credentials need.
    body_limit: ClassVar[int | None] = None

    def initialize(self, services: Services) -> None:
        self.services = services
        self._allow_origin()
        self._body = bytearray()
        self._body_too_large = False
        self.client_gone = False  # hung up before the answer (Tornado then says 500)
        services.inflight.enter()
        self._counted = True

    def on_finish(self) -> None:
        self._leave()

    def on_connection_close(self) -> None:
        # A client that hangs up mid-body never reaches on_finish.
        self.client_gone = True
        self._leave()

    def _leave(self) -> None:
        if self._counted:
            self._counted = False
            self.services.inflight.leave()

    def set_default_headers(self) -> None:
        self.set_header("X-Request-ID", request_id(self.request))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        if hasattr(self, "services"):  # Tornado calls this once before initialize()
            self._allow_origin()

    def _allow_origin(self) -> None:
        origin = self.request.headers.get("Origin", "")
        if origin and origin.rstrip("/") in self.services.config.server.cors:
            # https://fetch.spec.whatwg.org/#http-cors-protocol: bearer tokens, no cookies.
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", _EXPOSED)
            self.set_header("Vary", "Origin")

    @public("a CORS preflight carries no credentials by design")
    async def options(self, *args: str, **kwargs: str) -> None:
        """The browser asks whether it may call: yes, for an allowed origin."""
        allowed = [m.upper() for m in _METHODS if implements(type(self), m)]
        if "Access-Control-Allow-Origin" in self._headers:
            self.set_header("Access-Control-Allow-Methods", ", ".join(allowed))
            self.set_header("Access-Control-Allow-Headers", _ALLOWED_HEADERS)
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.finish()

    # -- request life cycle -------------------------------------------------------

    async def prepare(self) -> None:
        # Called once the headers are in, before the body is read. The cap is read once
        # here: data_received checks it for every chunk.
        self._max_body = self.max_body
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > self._max_body):
            raise self.too_large()
        self.current_user = None
        method = self.request.method or ""
        if implements(type(self), method) and not is_public(type(self), method):
            self.current_user = caller = await self.authenticate()
            needed = scope_of(type(self), method)
            if needed == AGENTS_ONLY:
                caller.as_agent(getattr(self, method.lower()).agents_only)
            elif isinstance(needed, Scope):
                caller.require(needed)

    def data_received(self, chunk: bytes) -> None:
        # Chunked bodies carry no Content-Length: stop keeping them past the limit.
        if len(self._body) + len(chunk) > self._max_body:
            self._body_too_large = True
        elif not self._body_too_large:
            self._body += chunk

    @property
    def max_body(self) -> int:
        limit = self.services.config.server.max_body_bytes
        return min(limit, self.body_limit) if self.body_limit else limit

    def too_large(self) -> GatewayError:
        return PayloadTooLarge(f"request body is larger than {self.max_body} bytes")

    @property
    def body(self) -> bytes:
        if self._body_too_large:
            raise self.too_large()
        return bytes(self._body)

    def take_body(self) -> bytearray:
        """The body as it was read, with no copy, and no longer kept here: an upload's
        bytes are then held once, by whoever took them."""
        if self._body_too_large:
            raise self.too_large()
        body, self._body = self._body, bytearray()
        return body

    @property
    def given_bearer(self) -> str | None:
        """The ``Authorization: Bearer`` header's token, if one was sent (the one
        place that reads the header)."""
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    @property
    def bearer_token(self) -> str:
        """The ``Authorization: Bearer`` header's token, or 401."""
        token = self.given_bearer
        if token is None:
            raise Unauthorized("authentication required: send Authorization: Bearer <access token>")
        return token

    async def authenticate(self) -> Caller:
        """The agent or API token named by the bearer token, or 401."""
        return await self.services.auth.authenticate(self.bearer_token)

    @property
    def client_address(self) -> str:
        """The caller's address, behind the trusted proxies (server.trusted_proxies)."""
        proxies = self.services.config.server.proxies
        return client_address(self.request.remote_ip or "", self.request.headers, proxies)

    @property
    def from_this_machine(self) -> bool:
        proxies = self.services.config.server.proxies
        return is_local(self.request.remote_ip or "", self.request.headers, proxies)

    @property
    def caller(self) -> Caller:
        assert self.current_user is not None, "caller used on a public method"
        return self.current_user

    # -- input ----------------------------------------------------------------------

    def json_body(self, schema: marshmallow.Schema) -> dict[str, Any]:
        """The JSON object body, validated by ``schema`` (unknown fields refused)."""
        if essence(self.request.headers.get("Content-Type", "")) != "application/json":
            raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
        try:
            data = load_json(self.body)
        except ValueError as exc:
            raise GatewayError(str(exc)) from None
        if not isinstance(data, dict):
            raise GatewayError("the JSON body must be an object")
        return load(schema, data)

    def query(self, schema: marshmallow.Schema) -> dict[str, Any]:
        """Query parameters validated by ``schema``; a repeated or unknown one is a 400."""
        raw = single_values(self.request.query_arguments, "parameter", " (percent-encode UTF-8)")
        return load(schema, raw)

    # -- output ---------------------------------------------------------------------

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload, default=_json_default, ensure_ascii=False))

    async def write_page(
        self,
        list_page: Callable[..., Awaitable[Page[T]]],
        present: Callable[[T], dict[str, Any]],
        schema: marshmallow.Schema | None = None,
    ) -> None:
        """One page of a list. The query is validated by ``schema`` (a PageQuery);
        its other fields are the list's filters, passed to ``list_page`` by name."""
        query = self.query(schema or PageQuery())
        cursor, size = query.pop("cursor", None), query.pop("page_size")
        after = decode_cursor(cursor, self.settings["cursor_key"])
        page = await list_page(after, size, **query)
        self.write_json(page_response(self, page, present))

    def send_error_body(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if fields:
            error["fields"] = fields
        self.clear()
        self.set_default_headers()
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.write_json({"error": error}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, GatewayError):
            headers = {}
            if isinstance(exc, TooManyRequests):
                headers["Retry-After"] = str(exc.retry_after)
            elif isinstance(exc, Unauthorized):
                headers["WWW-Authenticate"] = 'Bearer realm="bot-gateway"'
            elif isinstance(exc, MethodNotAllowed):
                headers["Allow"] = ", ".join(exc.allowed)
            self.send_error_body(exc.status, exc.code, exc.message, exc.fields, headers)
        elif status_code == 405:
            allowed = [m for m in self.SUPPORTED_METHODS if implements(type(self), m)]
            self.send_error_body(
                405, "method_not_allowed", "Method Not Allowed", None, {"Allow": ", ".join(allowed)}
            )
        elif isinstance(exc, DATABASE_ERRORS):
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
        if isinstance(value, DATABASE_ERRORS):
            log.warning("%s %s: database error %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


@public("answers 404 for every path no route claims")
class NotFoundHandler(BaseHandler):
    """The catch-all: an unknown path is a JSON 404, whatever the method."""

    async def prepare(self) -> None:
        raise HTTPError(404, "No such resource: %s", self.request.path)


def single_values(arguments: dict[str, list[bytes]], noun: str, hint: str = "") -> dict[str, str]:
    """Each argument's one value as text; a repeated or non-UTF-8 one is a 400."""
    text: dict[str, str] = {}
    for name, values in arguments.items():
        if len(values) > 1:
            raise ValidationError.of(name, f"give this {noun} once")
        try:
            text[name] = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError.of(name, f"not valid UTF-8{hint}") from None
    return text


def presenter(schema: marshmallow.Schema) -> Callable[[Any], dict[str, Any]]:
    """How the API shows a record (a storage model): ``schema``'s fields only."""

    def present(record: Any) -> dict[str, Any]:
        shown: dict[str, Any] = schema.dump(record)
        return shown

    return present


def found(record: T | None, what: str, ident: str) -> T:
    """``record``, or a 404 that names what was looked for."""
    if record is None:
        raise NotFound(f"No such {what}: {ident}")
    return record


def load(schema: marshmallow.Schema, data: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
        return loaded
    except marshmallow.ValidationError as exc:
        fields = _flatten(exc.messages)
        first = next(iter(fields.items()), ("body", ["invalid"]))
        raise ValidationError(f"{first[0]}: {first[1][0]}", fields) from None


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(messages, list):
        return {prefix or "body": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if name == "_schema":
            name = "body"
        flat.update(_flatten(value, name))
    return flat


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
