"""Who a request comes from: a signed-in agent, or an API token.

Agents are not scoped: what they may do is their role's (gateway/agents.py). A
token may do only what its scopes say, and never what needs an agent (their own
account, a sign-in, holding conversations).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import Forbidden
from storage.models import Agent, AgentRef, ApiToken, Role, Scope


@dataclass(frozen=True)
class Caller:
    ref: AgentRef  # what a message it sends remembers: id, name and kind
    agent: Agent | None = None
    token: ApiToken | None = None

    @classmethod
    def of_agent(cls, agent: Agent) -> Caller:
        return cls(agent.ref, agent=agent)

    @classmethod
    def of_token(cls, token: ApiToken) -> Caller:
        return cls(token.ref, token=token)

    @property
    def id(self) -> str:
        return self.ref.id

    @property
    def is_admin(self) -> bool:
        if self.token is not None:
            return Scope.ADMIN in self.token.scopes
        return self.agent is not None and self.agent.role is Role.ADMIN

    def require(self, scope: Scope) -> None:
        """:class:`Forbidden` for a token without ``scope``; agents pass."""
        if self.token is not None and scope not in self.token.scopes:
            raise Forbidden(f"this API token lacks the {scope.value} scope")

    def as_agent(self, action: str) -> Agent:
        """The signed-in agent; :class:`Forbidden` for a token, which is none."""
        if self.agent is None:
            raise Forbidden(f"an API token cannot {action}: that needs an agent's sign-in")
        return self.agent
