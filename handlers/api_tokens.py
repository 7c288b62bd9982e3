"""API tokens: an admin gives bots and other systems their own credentials, scoped,
shown once, and revoked at once."""

from __future__ import annotations

from gateway.agents import require_admin
from gateway.errors import NotFound
from handlers import schemas
from handlers.base import BaseHandler, found, needs, presenter
from storage.models import Scope

present = presenter(schemas.ApiToken())


class ApiTokensHandler(BaseHandler):
    @needs(Scope.ADMIN)
    async def post(self) -> None:
        """Create an API token.
        ---
        summary: Create an API token (admins); its secret is in this answer only
        description: >-
          The token is sent as `Authorization: Bearer bgw_…`. It may do what its
          scopes say and nothing that needs an agent: it holds no conversations
          and is never offered any. Only a hash of the secret is stored.
        tags: [tokens]
        requestBody:
          required: true
          content: {application/json: {schema: ApiTokenCreate}}
        responses:
          201:
            description: The token, with its secret
            content: {application/json: {schema: ApiTokenCreated}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
        """
        require_admin(self.caller, "create API tokens")
        data = self.json_body(schemas.ApiTokenCreate())
        token, secret = await self.services.auth.api_tokens.mint(
            data["name"], data["role"], frozenset(data["scopes"]), self.caller.id
        )
        self.write_json({**present(token), "token": secret}, 201)  # schema: ApiTokenCreated

    @needs(Scope.ADMIN)
    async def get(self) -> None:
        """List API tokens.
        ---
        summary: List API tokens (admins), newest first, with their last use
        tags: [tokens]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200: {description: A page of tokens, content: {application/json: {schema: ApiTokenPage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
        """
        require_admin(self.caller, "list API tokens")
        await self.write_page(self.services.storage.api_tokens.list_page, present)


class ApiTokenHandler(BaseHandler):
    @needs(Scope.ADMIN)
    async def get(self, token_id: str) -> None:
        """Read an API token.
        ---
        summary: Read an API token (admins); never its secret
        tags: [tokens]
        responses:
          200: {description: The token, content: {application/json: {schema: ApiToken}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        require_admin(self.caller, "read API tokens")
        token = await self.services.storage.api_tokens.get(token_id)
        self.write_json(present(found(token, "API token", token_id)))

    @needs(Scope.ADMIN)
    async def delete(self, token_id: str) -> None:
        """Revoke an API token.
        ---
        summary: Revoke an API token (admins); refused from now on by every gateway
        tags: [tokens]
        responses:
          204: {description: Revoked}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        require_admin(self.caller, "revoke API tokens")
        if not await self.services.storage.api_tokens.delete(token_id):
            raise NotFound(f"No such API token: {token_id}")
        self.services.events.end_sign_in(token_id)  # its streams here end now
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/v1/tokens/", ApiTokensHandler),
    (r"/api/v1/tokens/(?P<token_id>[^/]+)/", ApiTokenHandler),
]
