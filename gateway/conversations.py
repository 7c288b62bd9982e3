"""Agents' conversations: finding them, changing their status, reading them, and
the messages of one or of an agent's."""

from __future__ import annotations

from datetime import datetime

from gateway.activity import Activity
from gateway.assignment import Assigner
from gateway.errors import NotFound, ValidationError
from storage.database import Storage
from storage.models import Agent, Conversation, ConversationStatus, Direction, Message, Status
from storage.models import conversation_id as storage_conversation_id
from storage.pages import Page, Position
from storage.records import utcnow

ME = "me"


class Conversations:
    def __init__(self, storage: Storage, activity: Activity, assigner: Assigner) -> None:
        self.storage = storage
        self.activity = activity
        self.assigner = assigner

    async def list_page(
        self,
        me: Agent,
        after: Position | None,
        limit: int,
        *,
        assignee: str | None = None,
        status: ConversationStatus | None = None,
        channel_id: str | None = None,
        q: str | None = None,
    ) -> Page[Conversation]:
        """Newest activity first; ``assignee`` is ``me``, ``none`` (the queue, as
        storage.conversations.NONE) or an agent's id."""
        return await self.storage.conversations.list_page(
            after,
            limit,
            assignee=me.id if assignee == ME else assignee,
            status=status,
            channel_id=channel_id,
            q=q or "",
        )

    async def get(self, conversation_id: str) -> Conversation:
        found = await self.storage.conversations.get(conversation_id)
        if found is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        return found

    async def change(
        self, conversation_id: str, *, status: ConversationStatus | None = None,
        assignee: str | None = None, transfer: bool = False,
    ) -> Conversation:  # fmt: skip
        """Set the status, and with ``transfer`` the assignee (None: the queue)."""
        if status is None and not transfer:
            raise ValidationError("nothing to change: send status or assignee_id")
        current = await self.get(conversation_id)
        if transfer:
            current = await self.assigner.transfer(conversation_id, assignee)
        if status is not None and status != current.status:
            changed = await self.storage.conversations.update(
                conversation_id, {"status": status.value}
            )
            if changed is None:
                raise NotFound(f"No such conversation: {conversation_id}")
            await self.activity.conversations_changed([changed])
            current = changed
            if status is ConversationStatus.OPEN and current.assignee_id is None:
                self.assigner.nudge()
        return current

    async def read(self, conversation_id: str, at: datetime | None = None) -> Conversation:
        """The assignee read it: nothing is unread."""
        await self.get(conversation_id)
        read = await self.storage.conversations.read(conversation_id, at or utcnow())
        if read is None:
            raise NotFound(f"No such conversation: {conversation_id}")
        await self.activity.conversations_changed([read])
        return read

    async def messages_page(
        self,
        after: Position | None,
        limit: int,
        *,
        conversation_id: str | None = None,
        assignee_id: str | None = None,
        contact_id: str | None = None,
        agent_id: str | None = None,
        direction: Direction | None = None,
        status: Status | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page[Message]:
        """Messages, newest first. ``conversation_id`` and ``assignee_id`` (the messages
        of that agent's conversations) come down to contacts: a conversation is one
        contact's, found in one read before the page. One conversation's messages are
        few enough to look up in one query. An agent's conversations may hold most of
        them: there the conversations' newest messages bound a first page's window,
        since the newest ``limit + 1`` conversations have a message each at or after
        the last one's (storage/pages.py). One contact of the agent's needs only its
        conversation read, not all of theirs."""
        conversations = self.storage.conversations
        contact_ids: list[str] | None = None
        holds_a_page: str | None = None
        one_query = conversation_id is not None
        if conversation_id is None and assignee_id is not None and contact_id is not None:
            conversation_id = storage_conversation_id(contact_id)  # that one, if theirs
        if conversation_id is not None:
            found = await conversations.get(conversation_id)
            mine = found is not None and assignee_id in (None, found.assignee_id)
            contact_ids = [found.contact_id] if found is not None and mine else []
        elif assignee_id is not None:
            activity = await conversations.activity_of(assignee_id)
            contact_ids = [contact for contact, _ in activity]
            if after is None and created_before is None and len(activity) > limit:
                holds_a_page = activity[limit][1]
        if contact_id is not None:
            contact_ids = [contact_id] if contact_ids is None or contact_id in contact_ids else []
        return await self.storage.messages.list_page(
            after,
            limit,
            contact_ids=contact_ids,
            agent_id=agent_id,
            direction=direction,
            status=status,
            created_after=created_after,
            created_before=created_before,
            one_query=one_query,
            holds_a_page=holds_a_page,
        )
