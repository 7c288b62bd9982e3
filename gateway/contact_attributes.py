"""A contact's attributes: what the team keeps about them (an order number, a plan),
changed a few keys at a time, as Chatwoot's custom attributes are."""

from __future__ import annotations

from gateway.errors import NotFound, ValidationError
from storage.contacts import ContactsRepository
from storage.models import Contact

MAX_ATTRIBUTES = 20


async def change_attributes(
    contacts: ContactsRepository, contact_id: str, changes: dict[str, str | None]
) -> Contact:
    """Set each key of ``changes`` to its value, or remove it where the value is None."""
    if not changes:
        raise ValidationError.of("attributes", "name at least one attribute to set or remove")
    current = await contacts.get(contact_id)
    if current is None:
        raise NotFound(f"No such contact: {contact_id}")
    merged = {**current.attributes, **changes}
    kept = {key: value for key, value in merged.items() if value is not None}
    if len(kept) > MAX_ATTRIBUTES:
        raise ValidationError.of("attributes", f"a contact keeps at most {MAX_ATTRIBUTES}")
    if not await contacts.set_attributes(contact_id, kept):
        raise NotFound(f"No such contact: {contact_id}")
    shown = await contacts.shown(contact_id)
    if shown is None:
        raise NotFound(f"No such contact: {contact_id}")
    return shown
