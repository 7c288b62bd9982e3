"""Contacts: the people who wrote to one of our channels."""

from __future__ import annotations

from typing import Any

from gateway.contact_attributes import change_attributes
from gateway.messages import window_expires_at
from handlers import schemas
from handlers.base import BaseHandler, found, needs, presenter
from storage.models import Contact, Scope

_show = presenter(schemas.Contact())


class ContactPresenter(BaseHandler):
    def present(self, contact: Contact) -> dict[str, Any]:
        shown = _show(contact)
        window = self.services.channels.reply_window(contact.channel_id)
        shown["window_expires_at"] = _show_time(window_expires_at(contact, window))
        return shown


def _show_time(at: Any) -> str | None:
    return at.isoformat() if at is not None else None


class ContactsHandler(ContactPresenter):
    async def get(self) -> None:
        """List contacts.
        ---
        summary: List contacts, newest first
        tags: [contacts]
        parameters: [{in: query, schema: ContactQuery}]
        responses:
          200: {description: A page of contacts, content: {application/json: {schema: ContactPage}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
        """
        contacts = self.services.storage.contacts
        await self.write_page(contacts.list_page, self.present, schemas.ContactQuery())


class ContactHandler(ContactPresenter):
    async def get(self, contact_id: str) -> None:
        """Read a contact.
        ---
        summary: Read a contact
        tags: [contacts]
        parameters: [{in: path, name: contact_id, required: true, schema: {type: string}}]
        responses:
          200: {description: The contact, content: {application/json: {schema: Contact}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        contact = await self.services.storage.contacts.shown(contact_id)
        self.write_json(self.present(found(contact, "contact", contact_id)))

    @needs(Scope.CONVERSATIONS)
    async def patch(self, contact_id: str) -> None:
        """Change a contact's attributes.
        ---
        summary: Set or remove some of a contact's attributes
        tags: [contacts]
        parameters: [{in: path, name: contact_id, required: true, schema: {type: string}}]
        requestBody:
          required: true
          content: {application/json: {schema: ContactUpdate}}
        responses:
          200: {description: The contact, content: {application/json: {schema: Contact}}}
          400: {$ref: "#/components/responses/BadRequest"}
          401: {$ref: "#/components/responses/Unauthorized"}
          404: {$ref: "#/components/responses/NotFound"}
        """
        changes = self.json_body(schemas.ContactUpdate())["attributes"]
        contacts = self.services.storage.contacts
        self.write_json(self.present(await change_attributes(contacts, contact_id, changes)))


routes = [
    (r"/api/v1/contacts/", ContactsHandler),
    (r"/api/v1/contacts/(?P<contact_id>[^/]+)/", ContactHandler),
]
