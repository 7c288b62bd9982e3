"""Agents sign in and rotate their tokens."""

from __future__ import annotations

from handlers import schemas
from handlers.base import CREDENTIALS_BODY, BaseHandler, agents_only, public


class TokenHandler(BaseHandler):
    body_limit = CREDENTIALS_BODY

    @public("agents exchange their username and password for tokens here")
    async def post(self) -> None:
        """Sign in.
        ---
        summary: Sign in with username and password
        tags: [auth]
        security: []
        requestBody:
          required: true
          content: {application/json: {schema: TokenRequest}}
        responses:
          200: {description: A new token pair, content: {application/json: {schema: TokenPair}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          429: {$ref: "#/components/responses/TooManyRequests"}
        """
        data = self.json_body(schemas.TokenRequest())
        pair = await self.services.auth.login(
            data["username"], data["password"], self.client_address
        )
        self.write_json(pair)


class RefreshHandler(BaseHandler):
    body_limit = CREDENTIALS_BODY

    @public("the refresh token in the body is the credential")
    async def post(self) -> None:
        """Rotate a refresh token.
        ---
        summary: Exchange a refresh token for a new pair (the old one is used up)
        description: >-
          Presenting a refresh token a second time ends the sign-in: every token
          descended from it is refused, access tokens included.
        tags: [auth]
        security: []
        requestBody:
          required: true
          content: {application/json: {schema: RefreshRequest}}
        responses:
          200: {description: A new token pair, content: {application/json: {schema: TokenPair}}}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        data = self.json_body(schemas.RefreshRequest())
        self.write_json(await self.services.auth.refresh(data["refresh"]))


class LogoutHandler(BaseHandler):
    @agents_only("sign out: an admin revokes it (DELETE /api/v1/tokens/{id}/)")
    async def post(self) -> None:
        """Sign out.
        ---
        summary: End this sign-in
        description: >-
          Every token of the sign-in the access token belongs to is refused from
          now on, the refresh tokens included. Other sign-ins of the agent go on.
        tags: [auth]
        responses:
          204: {description: Signed out}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        sign_in = await self.services.auth.logout(self.bearer_token)
        self.services.events.end_sign_in(sign_in)  # its streams here end now
        self.set_status(204)
        self.finish()


routes = [
    (r"/auth/token/", TokenHandler),
    (r"/auth/token/refresh/", RefreshHandler),
    (r"/auth/logout/", LogoutHandler),
]
