"""Errors the storage layer raises to the rest of the gateway."""


class StorageUnavailable(Exception):
    """The database cannot be reached or started; the message says why in one line."""


class DuplicateKey(Exception):
    """A unique index refused a write (for example an existing username)."""
