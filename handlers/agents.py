"""Agent accounts: the first one bootstraps the system; each agent manages itself."""

from __future__ import annotations

from typing import ClassVar

from gateway.agents import Registration, create_agent, own_account, registration, update_agent
from gateway.conversations import ME
from gateway.errors import ValidationError
from handlers import schemas
from handlers.base import CREDENTIALS_BODY, BaseHandler, found, presenter, public
from storage.models import Agent

present = presenter(schemas.Agent())


class AgentsHandler(BaseHandler):
    body_limit = CREDENTIALS_BODY

    @public("the first agent, from this machine only, or anyone with open_registration")
    async def post(self) -> None:
        """Create an agent.
        ---
        summary: Create an agent
        description: >-
          Open without a token when `auth.open_registration` is on, or for the
          first agent ever, and then only from the gateway's own machine
          (`bot-gateway create-agent` is the other way); otherwise an agent's
          token is required.
        tags: [agents]
        security: [{}, {bearer: []}]
        requestBody:
          required: true
          content: {application/json: {schema: AgentCreate}}
        responses:
          201: {description: The new agent, content: {application/json: {schema: Agent}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        agents = self.services.storage.agents
        how = await registration(
            agents, self.services.config.auth.open_registration, self.from_this_machine
        )
        if how is Registration.AGENT:
            self.current_user = await self.authenticate()
        data = self.json_body(schemas.AgentCreate())
        agent = await create_agent(
            agents,
            data["username"],
            data["password"],
            data["display_name"],
            bootstrap=how is Registration.BOOTSTRAP,
        )
        self.services.assigner.nudge()  # someone new may take waiting conversations
        self.write_json(present(agent), 201)

    async def get(self) -> None:
        """List agents.
        ---
        summary: List agents, newest first
        tags: [agents]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200: {description: A page of agents, content: {application/json: {schema: AgentPage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        await self.write_page(self.services.storage.agents.list_page, present)


class AgentHandler(BaseHandler):
    path_parameters: ClassVar[dict[str, str]] = {"agent_id": "An agent's id, or me"}

    async def _get(self, agent_id: str) -> Agent:
        if agent_id == ME:
            return self.agent
        return found(await self.services.storage.agents.get(agent_id), "agent", agent_id)

    async def get(self, agent_id: str) -> None:
        """Read an agent.
        ---
        summary: Read an agent
        tags: [agents]
        responses:
          200: {description: The agent, content: {application/json: {schema: Agent}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        self.write_json(present(await self._get(agent_id)))

    async def patch(self, agent_id: str) -> None:
        """Change your own account.
        ---
        summary: Change your display name, password or availability
        description: >-
          A new password needs `current_password` (403 if wrong, under the sign-in
          limits) and ends every other sign-in of the agent; this one goes on.
        tags: [agents]
        requestBody:
          required: true
          content: {application/json: {schema: AgentUpdate}}
        responses:
          200: {description: The changed agent, content: {application/json: {schema: Agent}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        target = await self._get(agent_id)
        own_account(target, self.agent)
        changes = self.json_body(schemas.AgentUpdate())
        current = changes.pop("current_password", None)
        keep = None
        if "password" in changes:
            if current is None:
                raise ValidationError.of("current_password", "required to change the password")
            auth = self.services.auth
            await auth.confirm_password(self.agent, current, self.client_address)
            keep = auth.sign_in_of(self.bearer_token)
        agents = self.services.storage.agents
        updated = await update_agent(agents, target.id, changes, keep_sign_in=keep)
        if "is_available" in changes:
            await self.services.assigner.availability_changed(updated)
        self.write_json(present(updated))

    async def delete(self, agent_id: str) -> None:
        """Delete your own account.
        ---
        summary: Delete your own account
        tags: [agents]
        responses:
          204: {description: Deleted}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        target = await self._get(agent_id)
        own_account(target, self.agent)
        await self.services.storage.agents.delete(target.id)
        await self.services.assigner.agent_away(target.id, deleted=True)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/v1/agents/", AgentsHandler),
    (r"/api/v1/agents/(?P<agent_id>[^/]+)/", AgentHandler),
]
