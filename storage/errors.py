"""Errors the storage layer raises to the rest of the gateway."""

from pymongo.errors import ConnectionFailure, PyMongoError


class StorageUnavailable(Exception):
    """The database cannot be reached or started; the message says why in one line."""


class Refused(Exception):
    """The database refused one document of a bulk write (not a duplicate)."""


class DuplicateKey(Exception):
    """A unique index refused a write (for example an existing username)."""


# What a caller catches to mean "the database did not do it": answer 503, retry later.
DATABASE_ERRORS: tuple[type[Exception], ...] = (StorageUnavailable, PyMongoError)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached in time (not a bad write)."""
    if isinstance(exc, StorageUnavailable | ConnectionFailure):
        return True
    return isinstance(exc, PyMongoError) and (
        exc.timeout or exc.has_error_label("RetryableWriteError")
    )
