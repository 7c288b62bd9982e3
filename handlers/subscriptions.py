"""Subscriptions: other systems get the event log's events as signed webhooks (admins
manage them), with a log of every try and replay from an event id."""

from __future__ import annotations

from typing import Any

from common.standard_webhooks import new_secret
from gateway.agents import require_admin
from gateway.errors import NotFound, ValidationError
from gateway.webhook_targets import refused_url
from handlers import schemas
from handlers.base import BaseHandler, found, needs, presenter
from storage.lists import Position
from storage.models import Scope, Subscription

present = presenter(schemas.Subscription())
present_delivery = presenter(schemas.Delivery())


class _Admin(BaseHandler):
    """Every route here is an admin's (or an API token's with the admin scope)."""

    def _check_url(self, url: str) -> None:
        allow = self.services.config.subscriptions.allow_private_targets
        refused = refused_url(url, allow)
        if refused is not None:
            raise ValidationError.of("url", refused)

    async def _found(self, subscription_id: str) -> Subscription:
        require_admin(self.caller, "manage subscriptions")
        subscription = await self.services.storage.subscriptions.get(subscription_id)
        return found(subscription, "subscription", subscription_id)

    def _nudge(self, subscription_id: str) -> None:
        if self.services.subscriptions is not None:  # delivered here from now on, if ours
            self.services.subscriptions.nudge(subscription_id)


class SubscriptionsHandler(_Admin):
    @needs(Scope.ADMIN)
    async def post(self) -> None:
        """Subscribe a URL to events.
        ---
        summary: Subscribe a URL to events (admins); the signing secret is in this answer only
        description: >-
          From now on each event of the given types is POSTed to the URL as the event
          stream shows it, signed as Standard Webhooks specifies (webhook-id is the
          event id, the same on every try). The next event goes once the previous one
          got a 2xx; a failed one is tried again with backoff for as long as the event
          log keeps events (events.retention_hours), then the subscription is
          disabled with its reason.
        tags: [subscriptions]
        requestBody:
          required: true
          content: {application/json: {schema: SubscriptionCreate}}
        responses:
          201:
            description: The subscription, with its secret
            content: {application/json: {schema: SubscriptionCreated}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
        """
        require_admin(self.caller, "manage subscriptions")
        data = self.json_body(schemas.SubscriptionCreate())
        self._check_url(data["url"])
        await self.services.bots.require_bot(data["bot_id"])
        secret = new_secret()
        created = await self.services.storage.subscriptions.create(
            data["url"],
            frozenset(data["events"]),
            data["description"],
            secret,
            cursor=self.services.events.end(),  # what happens from now on
            created_by=self.caller.id,
            bot_id=data["bot_id"],
        )
        self._nudge(created.id)
        self.write_json({**present(created), "secret": secret}, 201)  # SubscriptionCreated

    @needs(Scope.ADMIN)
    async def get(self) -> None:
        """List subscriptions.
        ---
        summary: List subscriptions (admins), newest first, with their delivery health
        tags: [subscriptions]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200:
            description: A page of subscriptions
            content: {application/json: {schema: SubscriptionPage}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
        """
        require_admin(self.caller, "manage subscriptions")
        await self.write_page(self.services.storage.subscriptions.list_page, present)


class SubscriptionHandler(_Admin):
    @needs(Scope.ADMIN)
    async def get(self, subscription_id: str) -> None:
        """Read a subscription.
        ---
        summary: Read a subscription (admins); never its secret
        tags: [subscriptions]
        responses:
          200: {description: The subscription, content: {application/json: {schema: Subscription}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        self.write_json(present(await self._found(subscription_id)))

    @needs(Scope.ADMIN)
    async def patch(self, subscription_id: str) -> None:
        """Change, pause or resume a subscription.
        ---
        summary: Change the URL, events or description; pause or resume (admins)
        description: >-
          `paused: false` resumes a paused subscription, or one that was disabled,
          from the event it stopped at (those the log no longer keeps are gone).
        tags: [subscriptions]
        requestBody:
          required: true
          content: {application/json: {schema: SubscriptionUpdate}}
        responses:
          200: {description: The subscription, content: {application/json: {schema: Subscription}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        await self._found(subscription_id)
        changes: dict[str, Any] = self.json_body(schemas.SubscriptionUpdate())
        if not changes:
            raise ValidationError("nothing to change: send url, events, description or paused")
        if "url" in changes:
            self._check_url(changes["url"])
        if changes.get("paused") is False:  # resumed: a fresh start, a disabled one too
            changes |= {"disabled_reason": None, "failing_since": None, "last_error": None}
        changed = await self.services.storage.subscriptions.update(subscription_id, changes)
        self._nudge(subscription_id)
        self.write_json(present(found(changed, "subscription", subscription_id)))

    @needs(Scope.ADMIN)
    async def delete(self, subscription_id: str) -> None:
        """Delete a subscription.
        ---
        summary: Delete a subscription and its delivery log (admins)
        tags: [subscriptions]
        responses:
          204: {description: Deleted}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        require_admin(self.caller, "manage subscriptions")
        if not await self.services.storage.subscriptions.delete(subscription_id):
            raise NotFound(f"No such subscription: {subscription_id}")
        self._nudge(subscription_id)
        self.set_status(204)
        self.finish()


class DeliveriesHandler(_Admin):
    @needs(Scope.ADMIN)
    async def get(self, subscription_id: str) -> None:
        """A subscription's delivery log.
        ---
        summary: Every try of a subscription's deliveries (admins), newest first
        tags: [subscriptions]
        parameters: [{in: query, schema: PageQuery}]
        responses:
          200: {description: A page of tries, content: {application/json: {schema: DeliveryPage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        await self._found(subscription_id)
        repository = self.services.storage.subscriptions

        async def page(after: Position | None, size: int) -> Any:
            return await repository.deliveries_page(subscription_id, after, size)

        await self.write_page(page, present_delivery)


class ReplayHandler(_Admin):
    @needs(Scope.ADMIN)
    async def post(self, subscription_id: str) -> None:
        """Replay a subscription's events.
        ---
        summary: Send again every wanted event after an event id (admins)
        description: >-
          Delivery goes back to the event after `after` (an event id the log still
          keeps) and goes on from there in order, with the same webhook-ids.
        tags: [subscriptions]
        requestBody:
          required: true
          content: {application/json: {schema: Replay}}
        responses:
          200: {description: The subscription, content: {application/json: {schema: Subscription}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          403: {$ref: "#/components/responses/Forbidden"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        await self._found(subscription_id)
        after = self.json_body(schemas.Replay())["after"]
        if not self.services.storage.events.kept(after):
            raise ValidationError.of("after", "an event id the event log still keeps")
        changed = await self.services.storage.subscriptions.update(
            subscription_id, {"cursor": after, "failing_since": None, "last_error": None}
        )
        self._nudge(subscription_id)
        self.write_json(present(found(changed, "subscription", subscription_id)))


routes = [
    (r"/api/v1/subscriptions/", SubscriptionsHandler),
    (r"/api/v1/subscriptions/(?P<subscription_id>[^/]+)/", SubscriptionHandler),
    (r"/api/v1/subscriptions/(?P<subscription_id>[^/]+)/deliveries/", DeliveriesHandler),
    (r"/api/v1/subscriptions/(?P<subscription_id>[^/]+)/replay/", ReplayHandler),
]
