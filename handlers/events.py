"""Live events for agents: a Server-Sent Events stream that resumes where it left off.

https://html.spec.whatwg.org/multipage/server-sent-events.html: each event goes out
as ``id:``, ``event:`` and one ``data:`` line of JSON. A client that reconnects
with ``Last-Event-ID`` (browsers do it themselves) gets what it missed, in order,
then the live stream; an id from before the log's retention gets ``event: reset``
(reload, then stream on). A comment line every ``events.heartbeat_seconds`` keeps
idle connections open through proxies, and the stream ends when the access token
behind it expires or its sign-in ends (checked every few seconds, and at once for a
sign-out on this gateway), with ``event: signed_out``: sign in again, do not
reconnect. A client that falls ``events.stream_queue_events`` behind,
or whose sign-in opens more than its share of streams, gets ``event: resume`` and the
stream ends: it reconnects with Last-Event-ID and misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from tornado.iostream import StreamClosedError

from gateway.auth import Grant
from gateway.events import READ_BATCH, RESUMABLE, SIGNED_OUT, Subscriber
from gateway.tokens import TICKET_TTL
from handlers import schemas
from handlers.base import BaseHandler, agents_only, presenter, public
from handlers.conversations import present as present_conversation
from handlers.subscriptions import present as present_subscription
from storage.errors import DATABASE_ERRORS
from storage.models import Conversation, Event, Note, Scope, Subscription

present_message = presenter(schemas.Message())
present_note = presenter(schemas.Note())


def event_json(event: Event) -> dict[str, Any]:
    """An event as the stream's ``data:`` line shows it."""
    shown: dict[str, Any] = {
        "id": event.id,
        "type": event.type.value,
        "conversation_id": event.conversation_id,
    }
    if isinstance(event.subject, Conversation):
        shown["conversation"] = present_conversation(event.subject)
    elif isinstance(event.subject, Subscription):
        shown["subscription"] = present_subscription(event.subject)
    elif isinstance(event.subject, Note):
        shown["note"] = present_note(event.subject)
    else:
        shown["message"] = present_message(event.subject)
    return shown


class TicketHandler(BaseHandler):
    @agents_only("take a ticket: it opens the stream with Authorization: Bearer")
    async def post(self) -> None:
        """A ticket for the event stream.
        ---
        summary: A single-use ticket to open the event stream from a browser
        description: >-
          EventSource cannot send an Authorization header: pass the ticket as
          `?ticket=` instead, within 60 seconds, once.
        tags: [events]
        responses:
          201: {description: The ticket, content: {application/json: {schema: Ticket}}}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        ticket = await self.services.auth.ticket(self.bearer_token)
        expires_in = int(TICKET_TTL.total_seconds())
        self.write_json({"ticket": ticket, "expires_in": expires_in}, 201)


class EventsHandler(BaseHandler):
    @public("the bearer header or a single-use ticket, both checked in the method")
    async def get(self) -> None:
        """The live event stream.
        ---
        summary: Live events (Server-Sent Events), resumable with Last-Event-ID
        description: >-
          Each event is `id:`, `event:` (message.created, message.updated,
          conversation.updated) and a `data:` line holding an Event. Reconnect
          with Last-Event-ID to get what was missed; `event: reset` means it is
          older than the log keeps (reload the lists). `: heartbeat` comments
          come every 15 s.
        tags: [events]
        security: [{bearer: []}, {}]
        parameters: [{in: query, schema: EventQuery}]
        responses:
          200:
            description: The stream; each data line is an Event
            content: {text/event-stream: {schema: Event}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        query = self.query(schemas.EventQuery())
        grant = await self.services.auth.stream_grant(self.given_bearer, query.get("ticket"))
        grant.caller.require(Scope.READ)
        me = grant.caller.id
        only = query.get("conversation_id")

        def wants(event: Event) -> bool:
            if query.get("assignee") == "me" and event.assignee_id != me:
                return False
            return only is None or event.conversation_id == only

        self._leave()  # a stream is no request in flight: shutdown ends it, not waits
        hub = self.services.events
        # Before the replay, so nothing is missed; may refuse an agent with too many.
        sign_in = grant.claims.family if grant.claims else me  # a token: its own
        subscriber = hub.subscribe(wants, me, sign_in)
        self._subscriber = subscriber
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        watchdog = asyncio.ensure_future(self._watch(subscriber, grant))
        try:
            last = self.request.headers.get("Last-Event-ID") or query.get("last_event_id")
            last = await self._replay(last, wants)
            self.write(": connected\n\n")
            await self.flush()
            await self._stream(subscriber, last)
        except StreamClosedError:
            pass  # the agent went away
        finally:
            watchdog.cancel()
            hub.unsubscribe(subscriber)
        if not self._finished:
            with contextlib.suppress(StreamClosedError):
                self.finish()

    async def _replay(self, last: str | None, wants: Any) -> str | None:
        """What was missed since ``last``; returns the id it ended at. Without one the
        stream starts at the log's end: what came before is in the lists."""
        if not last:
            return self.services.events.end()
        if not self.services.storage.events.kept(last):
            reason = {"reason": "the events after this id are no longer kept; reload"}
            self.write(f"event: reset\ndata: {json.dumps(reason)}\n\n")
            return self.services.events.end()
        events, hub = self.services.storage.events, self.services.events
        while True:  # up to the hub's horizon: the hub streams what comes after
            batch = await events.after(last, READ_BATCH, before=hub.horizon())
            for event in batch:
                if wants(event):
                    self._send(event)
                last = event.id
            await self.flush()
            if len(batch) < READ_BATCH:
                return last

    async def _stream(self, subscriber: Subscriber, last: str | None) -> None:
        """The hub's events as they come; what piled up since the last write goes out
        in one write and one flush, and only an idle stream waits with a timer."""
        heartbeat = self.services.config.events.heartbeat_seconds
        queue = subscriber.queue
        while True:
            batch: list[Event | None] = []
            if queue.empty():
                try:
                    batch.append(await asyncio.wait_for(queue.get(), heartbeat))
                except TimeoutError:
                    self.write(": heartbeat\n\n")
                    await self.flush()
                    continue
            while not queue.empty():
                batch.append(queue.get_nowait())
            for event in batch:
                if subscriber.ended is not None:  # checked before every event
                    data = json.dumps({"reason": subscriber.ended, "last_event_id": last})
                    if subscriber.ended in RESUMABLE:
                        self.write(f"event: resume\ndata: {data}\n\n")
                    elif subscriber.ended == SIGNED_OUT:  # sign in again; not a drop
                        self.write(f"event: signed_out\ndata: {data}\n\n")
                    return
                if event is None:
                    return
                if last is not None and event.id <= last:
                    continue  # replayed already
                self._send(event)
                last = event.id
            await self.flush()

    async def _watch(self, subscriber: Subscriber, grant: Grant) -> None:
        """Ends the stream when its grant lapses (expiry, sign-out on any gateway),
        checked every ``events.recheck_seconds``; a stream whose client reads nothing
        is cut off ``events.write_timeout_seconds`` after it was told to end."""
        config = self.services.config.events
        while subscriber.ended is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.ending.wait(), config.recheck_seconds)
            try:
                valid = subscriber.ended is not None or await self.services.auth.still_valid(grant)
            except DATABASE_ERRORS:
                valid = True  # the database is away: that ends no sign-in
            if not valid:
                subscriber.end(SIGNED_OUT)
        # The writer leaves at its next step (and cancels this); one stuck writing to a
        # client that stopped reading never gets there.
        await asyncio.sleep(config.write_timeout_seconds)
        self.request.connection.close()  # type: ignore[union-attr]

    def _send(self, event: Event) -> None:
        data = json.dumps(event_json(event), default=str, ensure_ascii=False)
        self.write(f"id: {event.id}\nevent: {event.type.value}\ndata: {data}\n\n")

    def on_connection_close(self) -> None:
        super().on_connection_close()
        subscriber = getattr(self, "_subscriber", None)
        if subscriber is not None:  # the agent hung up: wake the stream to end it
            subscriber.end("the client went away")


routes = [
    (r"/api/v1/events/", EventsHandler),
    (r"/api/v1/events/ticket/", TicketHandler),
]
