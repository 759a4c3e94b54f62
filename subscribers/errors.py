"""Every error a person can cause and fix, for both packages: one tree.

Each carries a one-line message that says what is wrong and where (the
file and line, the setting, the field, the queue); ``publish`` prints it as
``error: <message>`` and exits 1, and the web service answers with it.
Anything else that escapes is a bug. The lower layer's classes are defined
here or, where a module is named below, beside the one code that raises
them; ``pipeline`` adds its own under :class:`~pipeline.errors.PublishError`.

    NewsletterError                  a user-facing error with a one-line message
     ├── SubscriberError             subscribers, the store, the web service
     │    ├── InvalidEmail           an address that is not one
     │    │    └── UndeliverableAddress  one no message can carry
     │    ├── InvalidDomain          a domain IDNA 2008 refuses
     │    ├── NotFound               no such subscriber
     │    ├── Suppressed             an erased or complained address
     │    ├── TooManySignups         too many signups from one network (signup.py)
     │    ├── BadInput               a posted body that is no signup (forms.py)
     │    ├── BadReason              a reason for leaving that cannot be kept (leaving.py)
     │    ├── NotUnsubscribed        a reason for leaving from one who has not left (leaving.py)
     │    ├── TokenError             a forged, altered or expired link
     │    │    ├── ExpiredToken      a genuine confirmation link, too old (tokens.py)
     │    │    └── StaleLink         a genuine one whose signup is gone (confirm.py)
     │    ├── StoreError             the database cannot be used as configured
     │    │    ├── DatabaseUnavailable  it cannot be read or written now, even after retrying
     │    │    └── Conflict          two writers raced for one address (store/)
     │    └── QueueError             the SQS queue of SES notifications cannot be read
     └── PublishError                the editor's commands (pipeline/errors.py)
          ├── ConfigError            newsletter.toml, environment or flags
          ├── LocatedError           a problem at path:line in a file
          │    ├── IssueError        an issue file: front matter, body, images
          │    │    └── ImageError   a picture it uses that cannot be made ready for email
          │    └── TemplateError     a template in templates/ that does not compile
          ├── SiteError              building or deploying the static site
          ├── FeedError              reading a blog feed for a draft
          │    └── FetchError        a URL refused or not fetched (pipeline/fetch.py)
          ├── SendError              a send that cannot start or must stop
          │    └── IssueNotReady     an issue with lint errors (pipeline/sendplan.py)
          └── TransportError         a message not accepted (pipeline/transports/base.py)
               ├── Throttled         slow down and retry this message
               ├── QuotaExhausted    the daily quota is used up; pause the send
               ├── Rejected          this recipient or message is refused
               ├── TemporaryFailure  a network or 5xx problem; retry later
               └── SendingStopped    the account cannot send; stop the send

A failed recipient is a result, not an error that stops a send: the send
loop records a TransportError or an UndeliverableAddress in the ledger.

Outside the tree are the signals that never reach a person as an error,
each handled where it is caught:

    SnsRejected              subscribers/sns_fetch.py: /ses/events answers 403, logs why
    MalformedNotification    subscribers/notifications.py (a ValueError): the
                             webhook answers 400, the queue keeps the message
    TooDeep                  subscribers/jsontext.py (a ValueError): forms.py
                             makes it a BadInput
    QueryFailed              pipeline/golive/dns.py: a DNS query that failed,
                             which publish doctor reports as a finding
    IssueBusy                pipeline/schedule_lock.py: publish unschedule
                             refuses while publish due sends the issue
    BadAnswer                pipeline/transports/http1.py: an answer that is not
                             HTTP/1.x or ends early, which ses_http.py turns into
                             botocore's error for a broken connection
    Unanswered               pipeline/golive/reads.py: a read AWS refused or
                             failed, which publish doctor keeps as a finding
                             and goes on without
"""

from __future__ import annotations


class NewsletterError(Exception):
    """A user-facing error with a one-line message."""


class SubscriberError(NewsletterError):
    """A problem with a subscriber, the store or the web service."""


class InvalidEmail(SubscriberError):
    pass


class UndeliverableAddress(InvalidEmail):
    """An address that cannot be written into a message: a non-ASCII local
    part (it would need SMTPUTF8), or no address at all. The send records
    why in the ledger and goes on."""


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
