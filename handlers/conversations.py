"""Conversations: one per contact, with its assignee, status and each reader's unread count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.conversations import me_or
from handlers import schemas
from handlers.base import BaseHandler, needs, presenter
from storage.lists import Page, Position
from storage.models import Conversation, ConversationStatus, Note, Scope

present = presenter(schemas.Conversation())


def present_to(viewer: str) -> Callable[[Conversation], dict[str, Any]]:
    """A conversation as ``viewer`` sees it: ``unread`` is theirs."""

    def shown(conversation: Conversation) -> dict[str, Any]:
        return {**present(conversation), "unread": conversation.unread_for(viewer)}

    return shown


class ConversationsHandler(BaseHandler):
    async def get(self) -> None:
        """List conversations.
        ---
        summary: List conversations, newest activity first
        description: >-
          `assignee=me` is the signed-in agent's, `assignee=none` the queue of
          conversations nobody holds.
        tags: [conversations]
        parameters: [{in: query, schema: ConversationQuery}]
        responses:
          200:
            description: A page of conversations
            content: {application/json: {schema: ConversationPage}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """

        async def mine(after: Position | None, size: int, **filters: Any) -> Any:
            return await self.services.conversations.list_page(self.caller, after, size, **filters)

        await self.write_page(mine, present_to(self.caller.id), schemas.ConversationQuery())


class ConversationHandler(BaseHandler):
    async def get(self, conversation_id: str) -> None:
        """Read a conversation.
        ---
        summary: Read a conversation
        tags: [conversations]
        responses:
          200: {description: The conversation, content: {application/json: {schema: Conversation}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        conversation = await self.services.conversations.get(conversation_id)
        self.write_json(present_to(self.caller.id)(conversation))

    @needs(Scope.CONVERSATIONS)
    async def patch(self, conversation_id: str) -> None:
        """Transfer a conversation, or change its status or labels.
        ---
        summary: Transfer (assignee_id; null for the queue, me for yourself), set status or labels
        tags: [conversations]
        requestBody:
          required: true
          content: {application/json: {schema: ConversationUpdate}}
        responses:
          200: {description: The conversation, content: {application/json: {schema: Conversation}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        data = self.json_body(schemas.ConversationUpdate())
        assignee = data.get("assignee_id")
        changed = await self.services.conversations.change(
            conversation_id,
            status=ConversationStatus(data["status"]) if "status" in data else None,
            assignee=me_or(self.caller, assignee),
            transfer="assignee_id" in data,
            by=self.caller.ref.username,
            labels=data.get("labels"),
        )
        self.write_json(present_to(self.caller.id)(changed))


class ReadHandler(BaseHandler):
    @needs(Scope.CONVERSATIONS)
    async def post(self, conversation_id: str) -> None:
        """Mark a conversation read.
        ---
        summary: Mark a conversation read by you (your unread count goes to 0, no one else's)
        tags: [conversations]
        responses:
          200: {description: The conversation, content: {application/json: {schema: Conversation}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        reader = self.caller.id
        read = await self.services.conversations.read(conversation_id, reader)
        self.write_json(present_to(reader)(read))


class HandoffHandler(BaseHandler):
    @needs(Scope.CONVERSATIONS)
    async def post(self, conversation_id: str) -> None:
        """Hand a conversation from its bot to the agents.
        ---
        summary: Hand a conversation its bot holds to the agents' queue, with the reason
        description: >-
          The conversation becomes `open` in the queue and is assigned as usual; the
          agents see `handoff_reason`. From then on the bot's sends to it are
          refused (409) until it comes back to the bot (resolved, then reopened).
        tags: [conversations]
        requestBody:
          required: true
          content: {application/json: {schema: Handoff}}
        responses:
          200: {description: The conversation, content: {application/json: {schema: Conversation}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
          409: {$ref: "#/components/responses/Conflict"}
        """
        reason = self.json_body(schemas.Handoff())["reason"]
        moved = await self.services.bots.handoff(conversation_id, reason)
        self.write_json(present_to(self.caller.id)(moved))


present_note = presenter(schemas.Note())


class NotesHandler(BaseHandler):
    async def get(self, conversation_id: str) -> None:
        """A conversation's notes.
        ---
        summary: List a conversation's private notes, newest first
        tags: [conversations]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200: {description: A page of notes, content: {application/json: {schema: NotePage}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """

        async def notes(after: Position | None, size: int, **_: Any) -> Page[Note]:
            return await self.services.notes.page(conversation_id, after, size)

        await self.write_page(notes, present_note)

    @needs(Scope.CONVERSATIONS)
    async def post(self, conversation_id: str) -> None:
        """Write a note.
        ---
        summary: Write a private note in a conversation's thread (never sent to the contact)
        description: >-
          It shows in the thread for the agents and comes as `note.created` on the
          event stream; `@username` names a colleague, whose inbox tells them.
        tags: [conversations]
        requestBody:
          required: true
          content: {application/json: {schema: NoteCreate}}
        responses:
          201: {description: The note, content: {application/json: {schema: Note}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        content = self.json_body(schemas.NoteCreate())["content"]
        note = await self.services.notes.write(conversation_id, content, self.caller)
        self.write_json(present_note(note), 201)


class CountsHandler(BaseHandler):
    async def get(self) -> None:
        """How many conversations each list holds.
        ---
        summary: How many conversations are yours and open, in the queue, pending, and the bots'
        tags: [conversations]
        responses:
          200: {description: The counts, content: {application/json: {schema: Counts}}}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        self.write_json(await self.services.conversations.counts(self.caller))


class LabelsHandler(BaseHandler):
    async def get(self) -> None:
        """The labels in use.
        ---
        summary: The labels in use, with how many conversations carry each
        tags: [conversations]
        responses:
          200: {description: The labels, content: {application/json: {schema: Labels}}}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        found = await self.services.conversations.labels()
        shown = [{"name": n, "conversations": c, "open": o} for n, c, o in found]
        self.write_json({"results": shown})


routes = [
    (r"/api/v1/labels/", LabelsHandler),
    (r"/api/v1/conversations/", ConversationsHandler),
    (r"/api/v1/conversations/counts/", CountsHandler),
    (r"/api/v1/conversations/(?P<conversation_id>[^/]+)/", ConversationHandler),
    (r"/api/v1/conversations/(?P<conversation_id>[^/]+)/read/", ReadHandler),
    (r"/api/v1/conversations/(?P<conversation_id>[^/]+)/handoff/", HandoffHandler),
    (r"/api/v1/conversations/(?P<conversation_id>[^/]+)/notes/", NotesHandler),
]
