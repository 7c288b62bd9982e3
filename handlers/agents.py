"""Agent accounts: the first one bootstraps the system and is an admin; each agent
manages their own account, and admins create, disable and delete agents."""

from __future__ import annotations

from typing import ClassVar

from gateway.agents import (
    Registration,
    create_agent,
    keep_an_admin,
    may_change,
    registration,
    require_admin,
    update_agent,
)
from gateway.conversations import ME
from gateway.errors import ValidationError
from handlers import schemas
from handlers.base import CREDENTIALS_BODY, BaseHandler, found, needs, presenter, public
from storage.models import Agent, Role, Scope

present = presenter(schemas.Agent())


class AgentsHandler(BaseHandler):
    body_limit = CREDENTIALS_BODY

    @public("the first agent, from this machine only, or anyone with open_registration")
    async def post(self) -> None:
        """Create an agent.
        ---
        summary: Create an agent
        description: >-
          Open without a token when `auth.open_registration` is on (the new agent's
          role is then `agent`), or for the first agent ever, and then only from the
          gateway's own machine (`bot-gateway create-agent` is the other way); the
          first agent is an admin. Otherwise an admin's token is required (403 for
          an agent's).
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
            require_admin(self.current_user, "create agents")
        data = self.json_body(schemas.AgentCreate())
        role = data.get("role")
        if role is Role.ADMIN and how is Registration.OPEN:  # anyone may sign up: as agents
            require_admin(await self.authenticate(), "create an admin")
        agent = await create_agent(
            agents,
            data["username"],
            data["password"],
            data["display_name"],
            bootstrap=how is Registration.BOOTSTRAP,
            role=role,
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
            return self.caller.as_agent("be read as me")
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

    @needs(Scope.ADMIN)  # an agent's own account is theirs: tokens need the scope
    async def patch(self, agent_id: str) -> None:
        """Change an account.
        ---
        summary: Change your display name, password or availability; an admin, any role
        description: >-
          An agent changes their own `display_name`, `password` and `is_available`. A
          new password needs `current_password` (403 if wrong, under the sign-in
          limits) and ends every other sign-in of the agent; this one goes on. An
          admin changes any agent's `role` and `disabled`: a disabled agent's
          sign-ins end at once, on every gateway, and their conversations go back
          to the queue. The last enabled admin cannot be demoted or disabled (409).
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
        changes = self.json_body(schemas.AgentUpdate())
        may_change(target, self.caller, set(changes))
        agents = self.services.storage.agents
        demoted = changes.get("role") is Role.AGENT
        await keep_an_admin(agents, target, demoted or changes.get("disabled") is True)
        current = changes.pop("current_password", None)
        keep = None
        if "password" in changes:
            if current is None:
                raise ValidationError.of("current_password", "required to change the password")
            auth = self.services.auth
            await auth.confirm_password(target, current, self.client_address)
            keep = auth.sign_in_of(self.bearer_token)
        updated = await update_agent(agents, target.id, changes, keep_sign_in=keep)
        if changes.get("disabled") is True:  # their conversations go back to the queue
            await self.services.assigner.agent_away(updated.id, gone=True)
        elif "is_available" in changes or "disabled" in changes:
            await self.services.assigner.availability_changed(updated)
        self.write_json(present(updated))

    @needs(Scope.ADMIN)
    async def delete(self, agent_id: str) -> None:
        """Delete an account.
        ---
        summary: Delete your own account, or (an admin) any agent's
        tags: [agents]
        responses:
          204: {description: Deleted}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        target = await self._get(agent_id)
        may_change(target, self.caller, set())
        await keep_an_admin(self.services.storage.agents, target, leaves=True)
        await self.services.storage.agents.delete(target.id)
        await self.services.assigner.agent_away(target.id, gone=True)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/v1/agents/", AgentsHandler),
    (r"/api/v1/agents/(?P<agent_id>[^/]+)/", AgentHandler),
]
