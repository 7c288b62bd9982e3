"""Errors the storage layer raises to the rest of the gateway."""

from pymongo.errors import PyMongoError


class StorageUnavailable(Exception):
    """The database cannot be reached or started; the message says why in one line."""


class DuplicateKey(Exception):
    """A unique index refused a write (for example an existing username)."""


# What a caller catches to mean "the database did not do it": answer 503, retry later.
DATABASE_ERRORS: tuple[type[Exception], ...] = (StorageUnavailable, PyMongoError)
