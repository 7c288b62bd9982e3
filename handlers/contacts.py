"""Contacts: the people who wrote to one of our channels."""

from __future__ import annotations

from typing import Any

from gateway.errors import NotFound
from handlers import schemas
from handlers.base import BaseHandler, dump
from handlers.pagination import decode_cursor, page_response

_contact = schemas.Contact()


def present(contact: dict[str, Any]) -> dict[str, Any]:
    return dump(_contact, contact)


class ContactsHandler(BaseHandler):
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
        query = self.query(schemas.ContactQuery())
        page = await self.services.storage.contacts.list_page(
            decode_cursor(query.get("cursor")),
            query["page_size"],
            channel_id=query.get("channel_id"),
            q=query.get("q", ""),
        )
        self.write_json(page_response(self, page, present))


class ContactHandler(BaseHandler):
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
        contact = await self.services.storage.contacts.get(contact_id)
        if contact is None:
            raise NotFound(f"No such contact: {contact_id}")
        self.write_json(present(contact))


routes = [
    (r"/api/v1/contacts/", ContactsHandler),
    (r"/api/v1/contacts/(?P<contact_id>[^/]+)/", ContactHandler),
]
