"""What the store holds, as plain frozen data: subscribers, their consent and
their history; and the keys that make addresses comparable. How an address
is written is :mod:`subscribers.addresses`'s; a name, :mod:`subscribers.text`'s.

Nothing here touches the database or the network, so the rest of the package
(and ``pipeline``) can pass these around and test them freely.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

# Re-exported for the store, which imports it from here.
from subscribers.addresses import normalize_email as normalize_email
from subscribers.service_limits import CONFIRMATIONS_AFTER_REPORT as CONFIRMATIONS_AFTER_REPORT
from subscribers.service_limits import CONFIRMATIONS_PER_ADDRESS as CONFIRMATIONS_PER_ADDRESS
from subscribers.service_limits import CONFIRMATIONS_PER_DOMAIN as CONFIRMATIONS_PER_DOMAIN
from subscribers.service_limits import SIGNUPS_PER_IP as SIGNUPS_PER_IP
from subscribers.service_limits import TRUSTED_PROXIES as TRUSTED_PROXIES
from subscribers.service_limits import Limit as Limit

MAX_USER_AGENT = 512
MAX_IP = 64


class Status(StrEnum):
    """Where a subscriber stands. Only ``active`` subscribers are mailed issues."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def has_left(self) -> bool:
        """Unsubscribed, bounced or complained: only they can bring themselves back."""
        return self in (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)


class Source(StrEnum):
    """How a subscriber came onto the list."""

    FORM = "form"
    IMPORT = "import"
    CLI = "cli"


class EventKind(StrEnum):
    """Every change in a subscriber's history is one of these."""

    SUBSCRIBED = "subscribed"
    CONFIRMATION_SENT = "confirmation_sent"
    CONFIRMATION_FAILED = "confirmation_failed"
    """A try at mailing the confirmation failed; another is scheduled."""
    CONFIRMATION_GIVEN_UP = "confirmation_given_up"
    """No more tries: the reader stays pending without a confirmation."""
    CONFIRMED = "confirmed"
    WELCOME_SENT = "welcome_sent"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    SOFT_BOUNCED = "soft_bounced"
    BOUNCE_UNDETERMINED = "bounce_undetermined"
    COMPLAINED = "complained"
    DELIVERED = "delivered"
    IMPORTED = "imported"
    REACTIVATED = "reactivated"
    ERASED = "erased"


class LeavingReason(StrEnum):
    """Why a reader left, as the page after the unsubscribe button offers it
    (optional; kept on their ``unsubscribed`` event with a comment)."""

    TOO_OFTEN = "too_often"
    NOT_RELEVANT = "not_relevant"
    NEVER_SIGNED_UP = "never_signed_up"
    OTHER = "other"


MAX_LEAVING_COMMENT = 500
"""Characters of a leaving reader's own words that are kept (as one line)."""


class SuppressionReason(StrEnum):
    ERASED = "erased"
    COMPLAINED = "complained"


def utcnow() -> dt.datetime:
    """Now, in UTC, to the microsecond: the only clock the store uses."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamp read back from the database, made timezone-aware (UTC).

    SQLite keeps timestamps as naive text; they are always written in UTC.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


# ---------------------------------------------------------------------------
# Addresses as keys
# ---------------------------------------------------------------------------


def email_key(email: str) -> str:
    """The key that makes addresses unique regardless of case."""
    return email.lower()


def email_hash(email: str, salt: str) -> str:
    """What a suppression keeps instead of the address: HMAC-SHA256 under
    the newsletter's ``salt`` of the lowercased address's SHA-256 (so
    hashes made before there was a salt could be salted in place)."""
    plain = hashlib.sha256(email_key(email).encode("utf-8")).hexdigest()
    return hmac.new(salt.encode("ascii"), plain.encode("ascii"), hashlib.sha256).hexdigest()


_GMAIL = ("gmail.com", "googlemail.com")


def mailbox_key(email: str) -> str:
    """The inbox an address delivers to, as far as the address shows it:
    case-folded, without a ``+tag``, and for Gmail without the dots that
    Gmail ignores (``V.ictim+2@GoogleMail.com`` is ``victim@gmail.com``).
    Limits on confirmation messages count per mailbox, so that variants of
    one address never add up to more mail in one inbox."""
    local, _, domain = email.strip().rpartition("@")
    local, domain = local.casefold(), domain.casefold()
    tagless = local.split("+", 1)[0]
    local = tagless or local
    if domain in _GMAIL:
        domain = _GMAIL[0]
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def mailbox_domain(email: str) -> str:
    """The domain of :func:`mailbox_key` (Gmail's two spelled as one)."""
    return mailbox_key(email).rpartition("@")[2]


def mask_email(email: str) -> str:
    """``d•••@example.com``: enough for readers to recognise their address."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    """The record that shows consent (GDPR Art. 7): when, from where, with
    which wording, and when and from where it was confirmed; and the page
    the reader signed up on."""

    at: dt.datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    text: str | None = None
    confirmed_at: dt.datetime | None = None
    confirmed_ip: str | None = None
    confirmed_user_agent: str | None = None
    source: str | None = None
    """The page the reader signed up on ("blog sidebar", "issue page"...)."""


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    source: Source
    created_at: dt.datetime
    updated_at: dt.datetime
    confirmed_at: dt.datetime | None = None
    unsubscribed_at: dt.datetime | None = None
    confirmation_sent_at: dt.datetime | None = None
    consent: Consent = field(default_factory=Consent)

    @property
    def first_name(self) -> str:
        return self.name.split(" ", 1)[0] if self.name else ""


@dataclass(frozen=True)
class Signup:
    """One signup from the form, waiting for its confirmation: its own link
    (the ``nonce`` in it), and the name and consent it brings, which become
    the subscriber's only when that link is confirmed."""

    id: int
    subscriber_id: int
    nonce: str
    """Empty for the signups made before links carried one."""
    name: str
    consent: Consent
    created_at: dt.datetime
    mailed_at: dt.datetime | None = None


@dataclass(frozen=True)
class Event:
    """One entry in a subscriber's history."""

    id: int
    subscriber_id: int
    kind: str
    at: dt.datetime
    detail: Mapping[str, Any]
    send_id: int | None = None
    external_id: str | None = None


def dump_detail(detail: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, default=str)


def load_detail(text: str | None) -> Mapping[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


class Candidate(NamedTuple):
    """A subscriber as read from an import file, before it meets the store.

    A named tuple rather than a frozen dataclass, as immutable: an import
    makes one per row, and a tuple is made in half the time."""

    email: str
    line: int = 0
    name: str = ""
    status: Status = Status.ACTIVE
    created_at: dt.datetime | None = None
    consent_at: dt.datetime | None = None
    consent_ip: str | None = None
    consent_user_agent: str | None = None
    consent_text: str | None = None
    """The wording the reader agreed to, when the file has it (our own export)."""
    consent_source: str | None = None
    """The page the reader signed up on, when the file has it (our own export)."""
    confirmed_at: dt.datetime | None = None
    confirmed_ip: str | None = None
    origin: str = ""
    """Where the reader signed up, as far as the file says (``source: form, referrer: ...``)."""


@dataclass(frozen=True)
class Problem:
    """A row that was not imported, and why."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did; rows are counted once each."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reactivated: int = 0
    kept: int = 0
    """Rows whose address has left the list and was not brought back."""
    suppressed: list[Problem] = field(default_factory=list)
    """Rows skipped because the address was erased or complained."""
    problems: list[Problem] = field(default_factory=list)
    """Rows that could not be imported (bad address, duplicate, ...)."""
    ignored_columns: list[str] = field(default_factory=list)
    """Columns of the file that were not read, by their name in its header."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows(self) -> int:
        return (
            self.added
            + self.updated
            + self.unchanged
            + self.reactivated
            + self.kept
            + len(self.suppressed)
            + len(self.problems)
        )


@dataclass(frozen=True)
class Stats:
    """The list at a glance, and its health over the last ``days`` days."""

    by_status: Mapping[str, int]
    days: int = 30
    subscribed: int = 0
    confirmed: int = 0
    unsubscribed: int = 0
    sent: int = 0
    bounced: int = 0
    """Permanent bounces the provider reported."""
    complained: int = 0
    """Complaints the provider reported."""
    suppressed: int = 0
    delivered: int = 0
    """Deliveries the provider reported (when it publishes them)."""

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def bounce_rate(self) -> float | None:
        return self.bounced / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complained / self.sent if self.sent else None


@dataclass(frozen=True)
class Newsletter:
    """Who the subscription mail comes from, and where its links point."""

    name: str
    site_url: str
    sender: str
    """``Pain Free Living <newsletter@example.com>``"""
    reply_to: str
    postal_address: str
    unsubscribe_domain: str = ""
    """Where List-Unsubscribe's mailto goes (``unsubscribe+TOKEN@``, IDNA
    2008 ASCII); "": the header offers the link only."""

    def url(self, path: str) -> str:
        return f"{self.site_url.rstrip('/')}/{path.lstrip('/')}"
