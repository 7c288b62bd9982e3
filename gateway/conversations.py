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
# An agent with at most this many pages' worth of conversations whose newest messages
# rarely match a filter has their messages looked up by contact: fewer to read than
# every match of the filter, whose index leads otherwise (the filter is rare then).
FEW_CONVERSATIONS = 4


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
        contact's, found in one read before the page, which then has one query left.
        One conversation's messages are few enough to look up. An agent's first page
        finds its bound in their conversations' previews: the newest ``limit + 1`` showing a
        match (any message, with no other filter) each have one at or after the last
        one's key, and no other conversation has a message there, so that key bounds
        the page's window (storage/pages.py). If fewer show one, no window: their
        messages if they have few conversations, else the filter's matches. One
        contact of the agent's needs only its conversation read."""
        conversations = self.storage.conversations
        contact_ids: list[str] | None = None
        holds_a_page: str | None = None
        first_page = after is None and created_before is None
        by_contacts = False
        if conversation_id is None and assignee_id is not None and contact_id is not None:
            conversation_id = storage_conversation_id(contact_id)  # that one, if theirs
        one_query = conversation_id is not None
        if conversation_id is not None:
            found = await conversations.get(conversation_id)
            mine = found is not None and assignee_id in (None, found.assignee_id)
            contact_ids = [found.contact_id] if found is not None and mine else []
        elif assignee_id is not None:
            activity = await conversations.activity_of(assignee_id)
            contact_ids = [c.contact_id for c in activity]
            wanted = {"agent_id": agent_id, "direction": direction, "status": status}
            shown = {name: str(value) for name, value in wanted.items() if value is not None}
            matching = [c.key for c in activity if c.matches(shown)]
            if first_page and len(matching) > limit:
                holds_a_page = matching[limit]  # a match each at or after it
            elif first_page:  # one query, no window: theirs if few, else the filter's
                one_query = True
                by_contacts = len(activity) <= FEW_CONVERSATIONS * limit
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
            by_contacts=by_contacts,
            holds_a_page=holds_a_page,
            second=assignee_id is None,  # the conversations were this page's first query
        )
