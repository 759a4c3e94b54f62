"""Errors a reader, editor or operator can cause and fix.

    SubscriberError            one-line, user-facing
     ├── InvalidEmail          an address that is not one
     ├── InvalidDomain         a domain IDNA 2008 refuses (see addresses.py)
     ├── NotFound              no such subscriber
     ├── Suppressed            an erased or complained address
     ├── TokenError            a forged, altered or expired link
     ├── StoreError            the database cannot be used as configured
     │    └── DatabaseUnavailable  it cannot be read or written now, even after retrying
     └── QueueError            the SQS queue of SES notifications cannot be read
"""

from __future__ import annotations


class SubscriberError(Exception):
    """A user-facing error with a one-line message."""


class InvalidEmail(SubscriberError):
    pass


class InvalidDomain(SubscriberError):
    pass


class NotFound(SubscriberError):
    pass


class Suppressed(SubscriberError):
    pass


class TokenError(SubscriberError):
    pass


class StoreError(SubscriberError):
    pass


class DatabaseUnavailable(StoreError):
    """The database cannot be read or written, even after retrying for the
    bound: full disk, read-only file, lock held too long, server down.
    ``cause`` names it in a few words, with the file or server."""

    def __init__(self, cause: str, *, writing: bool = True) -> None:
        self.cause = cause
        self.writing = writing
        verb = "written" if writing else "read"
        super().__init__(f"the subscriber database could not be {verb} ({cause})")


class QueueError(SubscriberError):
    pass


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message, for a one-line report: the
    driver's own error (``exc.orig``) for a database error, the exception's
    type name when the message is empty. ``limit`` cuts the line short."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
