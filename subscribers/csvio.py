"""Subscribers in and out as CSV.

Import reads columns by their header, so exports from other services work
as they are (``csvreader`` reads the file: separator, encoding, quoting):

    ours        email, name, status, source, created_at, consent_at,
                consent_ip, consent_user_agent, consent_text, confirmed_ip,
                consent_source (the page they signed up on), ...
    Mailchimp   "Email Address", "First Name", "Last Name", OPTIN_TIME,
                OPTIN_IP, CONFIRM_TIME, CONFIRM_IP; UNSUB_TIME (its
                unsubscribed export) or CLEAN_TIME (cleaned) mark a row
                unsubscribed or bounced
    Substack    email, created_at; email_disabled=true is unsubscribed
    Buttondown  email (or email_address), subscriber_type (or type):
                regular, premium, unactivated, unsubscribed, undeliverable,
                ...; creation_date, ip_address, source, referrer_url,
                unsubscription_date
    listmonk    email, name, status (enabled, disabled, blocklisted),
                created_at (Go's time format)
    Ghost       email, name, subscribed_to_emails (true/false), created_at,
                deleted_at

A status is read from the status column; a column that says someone left
(email_disabled=true, subscribed_to_emails=false, a deleted_at) makes the
row unsubscribed whatever the status says, and without a status column an
unsubscribe or clean date does. Nobody who left is read as active. Other
columns (notes, labels, tags, attributes...) are ignored and named in the
report, once.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TextIO

from subscribers.addresses import EmailNormalizer
from subscribers.csvreader import Row, open_table
from subscribers.errors import SubscriberError
from subscribers.files import PRIVATE, atomic_text
from subscribers.imports import import_subscribers
from subscribers.models import (
    MAX_IP,
    MAX_USER_AGENT,
    Candidate,
    ImportReport,
    Problem,
    Status,
    as_utc,
)
from subscribers.provenance import signup_source
from subscribers.store import Store
from subscribers.text import clean_name, clip

HEADERS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_address", "e_mail", "e_mail_address", "mail"),
    "name": ("name", "full_name", "fullname", "display_name"),
    "first_name": ("first_name", "firstname", "fname", "given_name"),
    "last_name": ("last_name", "lastname", "lname", "surname", "family_name"),
    "status": ("status", "subscription_status", "subscriber_type", "type"),
    "created_at": (
        "created_at", "created", "creation_date", "date_added", "subscribed_at", "timestamp_opt",
    ),
    "consent_at": ("consent_at", "optin_time"),
    "consent_ip": ("consent_ip", "optin_ip", "ip_address"),
    "consent_user_agent": ("consent_user_agent",),
    "consent_text": ("consent_text",),
    "consent_source": ("consent_source",),
    "confirmed_at": ("confirmed_at", "confirm_time"),
    "confirmed_ip": ("confirmed_ip", "confirm_ip"),
    "unsubscribed_at": ("unsubscribed_at", "unsub_time", "unsubscription_date"),
    "cleaned_at": ("clean_time", "undeliverability_date"),
    "deleted_at": ("deleted_at",),
    "email_disabled": ("email_disabled",),
    "subscribed": ("subscribed_to_emails", "subscribed"),
    "source": ("source",),
    "referrer": ("referrer_url",),
}
_ALIASES = {alias: field for field, names in HEADERS.items() for alias in names}

STATUSES: dict[str, Status] = {
    **dict.fromkeys(
        (
            "active", "subscribed", "confirmed", "enabled", "opted_in",
            # Buttondown's readers who get the newsletter, paying or not
            "regular", "premium", "trialed", "gifted", "churning", "paused", "past_due", "unpaid",
        ),
        Status.ACTIVE,
    ),
    **dict.fromkeys(("pending", "unconfirmed", "unactivated", "upcoming"), Status.PENDING),
    **dict.fromkeys(
        (
            "unsubscribed", "disabled", "blocklisted", "blacklisted", "opted_out",
            "transactional", "archived",  # Mailchimp: never opted in, archived
            "removed", "blocked", "spammy", "churned",  # Buttondown
        ),
        Status.UNSUBSCRIBED,
    ),
    **dict.fromkeys(("bounced", "cleaned", "undeliverable"), Status.BOUNCED),
    **dict.fromkeys(("complained", "spam", "abuse"), Status.COMPLAINED),
}

YES = frozenset(("true", "t", "yes", "y", "1"))
NO = frozenset(("false", "f", "no", "n", "0"))
MAX_CONSENT_TEXT = 2000

EXPORT_FIELDS = (
    "email",
    "name",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "consent_at",
    "consent_ip",
    "consent_user_agent",
    "consent_text",
    "confirmed_ip",
    "consent_source",
)

_SEPARATORS = re.compile(r"[\s\-]+")
# Go's time.Time.String(), as listmonk exports it: 2023-01-02 03:04:05.123 +0000 UTC
_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([+-]\d\d)(\d\d)(?: \S+)?$")
# Cells a spreadsheet would run as a formula (or a DDE call: |), the
# full-width forms that some locales read the same way among them; every
# exported cell that starts with one gets a leading quote.
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "|", "＝", "＋", "－", "＠")


Cells = dict[str, str]
"""A row's cells by field name, every field of ``HEADERS`` there ("" if
the file has no such column)."""
_BLANK: Cells = dict.fromkeys(HEADERS, "")


def import_csv(
    store: Store,
    path: Path,
    *,
    reactivate: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> ImportReport:
    """Import ``path`` into ``store``, reading it once; problems carry line
    numbers in ``path``, and the report names the columns it ignored.
    ``encoding`` and ``delimiter`` override what is detected."""
    with open_table(path, encoding=encoding, delimiter=delimiter) as table:
        columns, ignored = _columns(path, table.header)
        titles = {field: table.header.values[index].strip() for field, index in columns.items()}
        rows = _candidates(table.rows(columns["email"]), columns, titles)
        report = import_subscribers(store, rows, reactivate=reactivate, label=path.name)
    report.ignored_columns = ignored
    return report


def _columns(path: Path, header: Row) -> tuple[dict[str, int], list[str]]:
    """The columns found (field name → index), and the names of the others."""
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, title in enumerate(header.values):
        name = title.strip()
        field = _ALIASES.get(_SEPARATORS.sub("_", name.lower()))
        if field is not None and field not in columns:
            columns[field] = index
        elif name and name not in ignored:
            ignored.append(name)
    if "email" not in columns:
        found = ", ".join(repr(title) for title in header.values[:8] if title.strip()) or "nothing"
        raise SubscriberError(
            f"{path}:{header.line}: no email column in the header (found {found}); "
            "name one 'email' or 'Email Address'"
        )
    return columns, ignored


def _candidates(
    rows: Iterator[Row | Problem], columns: dict[str, int], titles: dict[str, str]
) -> Iterator[Candidate | Problem]:
    found = tuple(columns.items())
    normalize = EmailNormalizer()
    for row in rows:
        if isinstance(row, Problem):
            yield row
            continue
        values = row.values
        width = len(values)
        cells = _BLANK.copy()
        for field, index in found:
            if index < width:
                text = values[index].strip()
                cells[field] = _unquote(text) if text[:1] == "'" else text
        yield _candidate(cells, titles, row.line, normalize)


def _candidate(
    cell: Cells, titles: dict[str, str], line: int, normalize: EmailNormalizer
) -> Candidate | Problem:
    try:
        email = normalize(cell["email"])
        name = cell["name"] or " ".join(
            part for part in (cell["first_name"], cell["last_name"]) if part
        )
        return Candidate(
            email=email,
            line=line,
            name=clean_name(name),
            status=_status(cell, titles),
            created_at=_when(titles, "created_at", cell["created_at"]),
            consent_at=_when(titles, "consent_at", cell["consent_at"]),
            consent_ip=cell["consent_ip"][:MAX_IP] or None,
            consent_user_agent=_clipped(cell["consent_user_agent"], MAX_USER_AGENT),
            consent_text=_clipped(cell["consent_text"], MAX_CONSENT_TEXT),
            consent_source=(
                signup_source(cell["consent_source"], default="") or None
                if cell["consent_source"]
                else None
            ),
            confirmed_at=_when(titles, "confirmed_at", cell["confirmed_at"]),
            confirmed_ip=cell["confirmed_ip"][:MAX_IP] or None,
            origin=_origin(cell),
        )
    except SubscriberError as exc:
        return Problem(line, str(exc))


def _status(cell: Cells, titles: dict[str, str]) -> Status:
    """The row's status: see the module's docstring."""
    text = cell["status"]
    status = None
    if text:
        status = _named_status(text)
        if status is None:
            raise SubscriberError(
                f"{titles['status']}: {text!r} is not one of active, pending, unsubscribed, "
                "bounced, complained (or a status of a known export)"
            )
    left = (cell["email_disabled"] or cell["subscribed"] or cell["deleted_at"]) and (
        _yes_no(titles, "email_disabled", cell["email_disabled"]) is True
        or _yes_no(titles, "subscribed", cell["subscribed"]) is False
        or bool(cell["deleted_at"])
    )
    if left and (status is None or not status.has_left):
        return Status.UNSUBSCRIBED
    if status is not None:
        return status
    if cell["cleaned_at"]:
        return Status.BOUNCED
    if cell["unsubscribed_at"]:
        return Status.UNSUBSCRIBED
    return Status.ACTIVE


@lru_cache(maxsize=256)
def _named_status(text: str) -> Status | None:
    """The status a status cell names, if any (a file has few distinct ones)."""
    return STATUSES.get(_SEPARATORS.sub("_", text.lower()))


def _yes_no(titles: dict[str, str], field: str, text: str) -> bool | None:
    if not text:
        return None
    word = text.lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise SubscriberError(f"{titles[field]}: {text!r} is not true or false")


def _when(titles: dict[str, str], field: str, text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        go = _GO_TIME.match(text)
        stamp = f"{go[1]}{go[2]}:{go[3]}" if go else text.replace(" UTC", "Z")
        try:
            value = dt.datetime.fromisoformat(stamp)
        except ValueError:
            raise SubscriberError(
                f"{titles[field]}: {text!r} is not a date like 2026-01-31 or 2026-01-31T09:00:00Z"
            ) from None
    return as_utc(value)


def _origin(cell: Cells) -> str:
    """Where the reader signed up, as far as the file says."""
    if not (cell["source"] or cell["referrer"]):
        return ""
    parts = []
    if source := cell["source"]:
        parts.append(f"source: {clip(source, 100)}")
    if referrer := cell["referrer"]:
        parts.append(f"referrer: {clip(referrer, 300)}")
    return ", ".join(parts)


def _clipped(text: str, limit: int) -> str | None:
    return clip(text, limit) if text else None


def _unquote(text: str) -> str:
    """Undo the quote that export puts before formula-like cells."""
    if text.startswith("'") and text[1:2] in _FORMULA:
        return text[1:]
    return text


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def export_csv(store: Store, out: TextIO, status: Status | None = None) -> int:
    """Write subscribers (with ``status``) to ``out`` as CSV, streaming; the
    header names work for import. Returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    count = 0
    for subscriber in store.iter(status):
        consent = subscriber.consent
        cells = (
            subscriber.email,
            subscriber.name,
            subscriber.status,
            subscriber.source,
            _iso(subscriber.created_at),
            _iso(subscriber.confirmed_at),
            _iso(subscriber.unsubscribed_at),
            _iso(consent.at),
            consent.ip or "",
            consent.user_agent or "",
            consent.text or "",
            consent.confirmed_ip or "",
            consent.source or "",
        )
        # Every cell, the address and the IPs too: each may be a stranger's text.
        writer.writerow([_formula_safe(cell) for cell in cells])
        count += 1
    return count


def export_file(store: Store, path: Path, status: Status | None = None) -> int:
    """Export to ``path``, which appears only once complete. Readable by its
    owner only: it holds personal data."""
    try:
        with atomic_text(path, mode=PRIVATE, newline="") as out:
            return export_csv(store, out, status)
    except OSError as exc:
        raise SubscriberError(f"{path}: {exc.strerror}") from None


def _formula_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA) else text


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""
