"""The Tornado application: every handler's routes, mounted with the services, and
one access log line and metric per request."""

from __future__ import annotations

import logging
from typing import Any

import tornado.web

from gateway.metrics import route_template
from gateway.runtime import Services
from handlers import (
    agents,
    api_tokens,
    auth,
    channels,
    contacts,
    conversations,
    docs,
    events,
    faqs,
    health,
    inbox,
    media,
    messages,
    metrics,
    replies,
    subscriptions,
    webhooks,
)
from handlers.base import BaseHandler, NotFoundHandler, check_handler_auth, request_id

access_log = logging.getLogger("gateway.access")

API_ROUTES: list[tuple[str, type]] = [
    *health.routes,
    *metrics.routes,
    *auth.routes,
    *agents.routes,
    *api_tokens.routes,
    *contacts.routes,
    *conversations.routes,
    *channels.routes,
    *messages.routes,
    *media.routes,
    *faqs.routes,
    *replies.routes,
    *events.routes,
    *subscriptions.routes,
    *webhooks.routes,
]


def make_app(services: Services) -> tornado.web.Application:
    """The Tornado application; refuses to build if a route could skip auth."""

    routes: dict[type, str] = {NotFoundHandler: "unmatched"}  # handler → its route's label

    def mount(pattern: str, handler: type, options: dict[str, Any] | None = None) -> Any:
        check_handler_auth(handler)
        kwargs = dict(options or {})
        if issubclass(handler, BaseHandler):
            kwargs["services"] = services
        routes.setdefault(handler, route_template(pattern))
        return (pattern, handler, kwargs)

    handlers = [mount(*route) for route in API_ROUTES]
    handlers += [mount(*route) for route in docs.routes_for(API_ROUTES)]
    handlers += [mount(*route) for route in inbox.routes]
    handlers.append(mount(r".*", NotFoundHandler))

    def log_request(handler: tornado.web.RequestHandler) -> None:
        route = routes.get(type(handler), "unmatched")  # also Tornado's own error handler
        metrics = services.metrics
        metrics.http.labels(route, str(status_of(handler))).inc()
        method = handler.request.method or ""
        method = method if method in tornado.web.RequestHandler.SUPPORTED_METHODS else "other"
        metrics.http_seconds.labels(route, method).observe(handler.request.request_time())
        _log_request(handler, route, method)

    return tornado.web.Application(
        handlers,
        log_function=log_request,
        xsrf_cookies=False,
        public_url=services.config.server.public_url,
        cursor_key=services.auth.tokens.derive(b"bot-gateway list cursors"),
    )


def status_of(handler: tornado.web.RequestHandler) -> int:
    """The answer's status; 499 (nginx's "client closed request") where the client hung
    up mid-request, which Tornado records as a 500 nobody received."""
    status = handler.get_status()
    return 499 if status >= 500 and getattr(handler, "client_gone", False) else status


def _log_request(handler: tornado.web.RequestHandler, route: str, method: str) -> None:
    """One line per request; its level follows the status. JSON logs get each part as
    a field of its own."""
    status = status_of(handler)
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if handler.request.path in ("/healthz", "/readyz") and status < 400:
        level = logging.DEBUG  # probes every few seconds would drown the log
    took_ms = round(1000.0 * handler.request.request_time(), 1)
    rid = request_id(handler.request)
    fields = {"method": method, "route": route, "status": status, "duration_ms": took_ms,
              "request_id": rid}  # fmt: skip
    # A signed link's path is a credential: such handlers are logged by their route.
    path = route if getattr(handler, "secret_path", False) else handler.request.path
    access_log.log(
        level,
        "%s %s %d %.1fms %s",
        method,
        path,
        status,
        took_ms,
        rid,
        extra={"fields": fields},
    )
