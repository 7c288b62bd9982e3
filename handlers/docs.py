"""OpenAPI 3 document built from the route table, and Swagger UI served offline.

Each handler method documents itself in its docstring (YAML after ``---``); the
schemas come from ``handlers/schemas.py``. Swagger UI's files ship in the
swagger-ui-bundle-v2 wheel, so the docs need no CDN.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from apispec import APISpec, yaml_utils
from apispec.ext.marshmallow import MarshmallowPlugin
from swagger_ui_bundle import swagger_ui_path
from tornado.web import StaticFileHandler

from channels.registry import CHANNEL_TYPES, webhook_suffixes
from gateway.metrics import route_template
from handlers import schemas
from handlers.base import BaseHandler, implements, is_public, public, scope_of
from storage.models import EventType

_METHODS = ("get", "post", "put", "patch", "delete")
_RESPONSES = {
    "BadRequest": "Invalid input; `fields` names each problem",
    "Unauthorized": "Missing, invalid or expired credentials",
    "Forbidden": "Authenticated, but not allowed",
    "NotFound": "No such resource",
    "MethodNotAllowed": "The resource takes other methods; see Allow",
    "Conflict": "Conflicts with what is stored",
    "PayloadTooLarge": "Too large: the body (server.max_body_bytes), or a file (media.max_bytes)",
    "UnsupportedMediaType": "The body is not application/json",
    "TooManyRequests": "Too many attempts; see Retry-After",
    "BadGateway": "The provider failed at what the gateway asked of it",
}
# Every operation with a JSON body can answer these, whatever its docstring says.
_BODY_ERRORS = {"400": "BadRequest", "413": "PayloadTooLarge", "415": "UnsupportedMediaType"}
_SCHEMAS = [
    schemas.Error,
    schemas.TokenRequest,
    schemas.RefreshRequest,
    schemas.TokenPair,
    schemas.AgentCreate,
    schemas.AgentUpdate,
    schemas.Agent,
    schemas.ApiTokenCreate,
    schemas.ApiToken,
    schemas.ApiTokenCreated,
    schemas.Contact,
    schemas.ContactUpdate,
    schemas.Channel,
    schemas.Message,
    schemas.MessageCreate,
    schemas.FaqCreate,
    schemas.FaqUpdate,
    schemas.Faq,
    schemas.Suggestions,
    schemas.SavedReplyCreate,
    schemas.SavedReplyUpdate,
    schemas.SavedReply,
    schemas.Conversation,
    schemas.ConversationUpdate,
    schemas.Labels,
    schemas.Counts,
    schemas.Handoff,
    schemas.NoteCreate,
    schemas.Note,
    schemas.ChannelUpdate,
    schemas.SubscriptionCreate,
    schemas.SubscriptionUpdate,
    schemas.Subscription,  # before Event, which nests it
    schemas.SubscriptionCreated,
    schemas.Delivery,
    schemas.Replay,
    schemas.Event,
    schemas.Ticket,
    schemas.Templates,
]
_PAGED = [
    schemas.Agent,
    schemas.ApiToken,
    schemas.Subscription,
    schemas.Delivery,
    schemas.Contact,
    schemas.Channel,
    schemas.Message,
    schemas.Faq,
    schemas.SavedReply,
    schemas.Note,
    schemas.Conversation,
]


def _link(operation: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: where a client goes next, with values from this response."""
    return {
        "operationId": operation,
        "parameters": {name: f"$response.body#/{path}" for name, path in parameters.items()},
    }


_CONVERSATION_LINKS = {
    "Messages": _link("getMessages", conversation_id="id"),
    "MarkRead": _link("postRead", conversation_id="id"),
    "Change": _link("patchConversation", conversation_id="id"),
    "Events": _link("getEvents", conversation_id="id"),
    "Contact": _link("getContact", contact_id="contact/id"),
}
_MESSAGE_LINKS = {
    "Message": _link("getMessage", message_id="id"),
    "Conversation": _link("getConversation", conversation_id="conversation_id"),
    "Contact": _link("getContact", contact_id="contact/id"),
}
_LINKS: dict[str, dict[str, dict[str, Any]]] = {  # operationId: {status: links}
    "postAgents": {"201": {"Agent": _link("getAgent", agent_id="id")}},
    "getContact": {"200": {"Messages": _link("getMessages", contact_id="id")}},
    "getConversation": {"200": _CONVERSATION_LINKS},
    "patchConversation": {"200": _CONVERSATION_LINKS},
    "postRead": {"200": _CONVERSATION_LINKS},
    "postMessages": {"201": _MESSAGE_LINKS},
    "getMessage": {"200": _MESSAGE_LINKS},
    "postFaqs": {"201": {"Faq": _link("getFaq", faq_id="id")}},
    "postTicket": {"201": {"Events": _link("getEvents", ticket="ticket")}},
}


def _new_spec() -> APISpec:
    """The spec's frame: its info, security scheme and shared components."""
    spec = APISpec(
        title="bot-gateway",
        version=version("bot-gateway"),
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Agents answer Telegram and WhatsApp contacts through one API."},
        security=[{"bearer": []}],
    )
    spec.components.security_scheme(
        "bearer",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An agent's access token (a JWT), or an API token (bgw_…)",
        },
    )
    for schema in _SCHEMAS:
        spec.components.schema(schema.__name__, schema=schema)
    for item in _PAGED:
        page = schemas.page_of(item)
        spec.components.schema(page.__name__, schema=page)
    for name, description in _RESPONSES.items():
        spec.components.response(
            name, {"description": description, "content": {"application/json": {"schema": "Error"}}}
        )
    return spec


def build_spec(routes: list[tuple[str, type]]) -> dict[str, Any]:
    spec = _new_spec()
    for pattern, handler in routes:
        operations = {
            method: yaml_utils.load_yaml_from_docstring(getattr(handler, method).__doc__ or "")
            for method in _METHODS
            if implements(handler, method)
        }
        for method, operation in operations.items():
            if "responses" not in operation:
                raise TypeError(f"{handler.__name__}.{method} has no OpenAPI docstring")
            # getMessages, postMessages, getMessage: stable names for generated clients.
            operation.setdefault("operationId", method + handler.__name__.removesuffix("Handler"))
            if not is_public(handler, method):  # what an API token needs to call it
                operation["x-token-scope"] = str(scope_of(handler, method))
            for code, links in _LINKS.get(operation["operationId"], {}).items():
                operation["responses"][int(code)]["links"] = links  # YAML read 200 as int
            if "requestBody" in operation:
                for code, name in _BODY_ERRORS.items():
                    operation["responses"].setdefault(
                        code, {"$ref": f"#/components/responses/{name}"}
                    )
        described = getattr(handler, "path_parameters", {})
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            operation["parameters"] = [
                {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                | ({"description": described[name]} if name in described else {})
                for name in re.compile(pattern).groupindex
                if name not in declared
            ] + operation.get("parameters", [])
            for parameter in operation["parameters"]:
                if parameter.get("name") == "channel_type":  # one list: the registry's
                    parameter["schema"]["enum"] = sorted(CHANNEL_TYPES)
                elif parameter.get("name") == "suffix":
                    parameter["schema"]["enum"] = webhook_suffixes()
        if operations:
            spec.path(path=route_template(pattern), operations=operations)
    document = spec.to_dict()
    # marshmallow cannot say "at least one field"; the handler refuses an empty PATCH.
    for name in ("AgentUpdate", "FaqUpdate", "ConversationUpdate", "SubscriptionUpdate"):
        document["components"]["schemas"][name]["minProperties"] = 1
    document["webhooks"] = {event.value: _webhook(event) for event in EventType}
    return document


_SIGNED = [  # https://www.standardwebhooks.com/
    ("webhook-id", "The event's id: the same on every try of it; dedupe on it"),
    ("webhook-timestamp", "When this try was signed, in seconds since the epoch"),
    ("webhook-signature", "v1, and the base64 HMAC-SHA256 of id.timestamp.body"),
]


def _webhook(event: EventType) -> dict[str, Any]:
    """What a subscription to ``event`` receives (OpenAPI 3.1 ``webhooks``)."""
    return {
        "post": {
            "summary": f"{event.value}, to a subscription's URL",
            "description": (
                "The event as the stream's data line shows it, signed as Standard Webhooks "
                "specifies with the subscription's secret. The next event goes once this "
                "one got a 2xx; until then it is tried again with backoff."
            ),
            "operationId": f"webhook_{event.value.replace('.', '_')}",
            "parameters": [
                {
                    "in": "header",
                    "name": name,
                    "required": True,
                    "description": text,
                    "schema": {"type": "string"},
                }
                for name, text in _SIGNED
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
            },
            "responses": {"2XX": {"description": "Received: the next event may come"}},
        }
    }


class SchemaHandler(BaseHandler):
    def initialize(self, services: Any, spec: dict[str, Any]) -> None:  # type: ignore[override]
        super().initialize(services)
        self.spec = spec

    @public("the API description is public, like the routes it describes")
    async def get(self) -> None:
        self.write_json(self.spec)


_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>bot-gateway API</title>
  <link rel="stylesheet" href="static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="static/swagger-ui-bundle.js"></script>
  <script src="init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({
  url: "../schema/",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null
});
"""

# Same-origin only: the docs page can reach nothing but this server, and no other
# site may frame it (a framed page with a token field invites clickjacking).
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


@public("documentation pages for people with a browser")
class DocsHandler(BaseHandler):
    async def get(self, asset: str = "") -> None:
        if asset == "init.js":
            self.set_header("Content-Type", "text/javascript; charset=utf-8")
            body = _INIT
        else:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            body = _PAGE
        self.set_header("Content-Security-Policy", _CSP)
        self.set_header("X-Frame-Options", "DENY")  # browsers without frame-ancestors
        self.set_header("Cache-Control", "no-cache")
        self.finish(body)


@public("Swagger UI's static files")
class DocsAssetHandler(StaticFileHandler):
    pass


def routes_for(api_routes: list[tuple[str, type]]) -> list[tuple[Any, ...]]:
    """The docs routes; the schema describes ``api_routes``."""
    spec = build_spec(api_routes)
    return [
        (r"/api/v1/schema/", SchemaHandler, {"spec": spec}),
        (r"/api/v1/docs/(?P<asset>init\.js)?", DocsHandler),
        (r"/api/v1/docs/static/(.*)", DocsAssetHandler, {"path": str(swagger_ui_path)}),
    ]
