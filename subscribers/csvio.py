"""Subscribers in and out as CSV.

Import reads columns by their header, so exports from other services work
as they are:

    ours          email, name, status, created_at, consent_at, consent_ip, ...
    Mailchimp     "Email Address", "First Name", "Last Name", OPTIN_TIME,
                  OPTIN_IP, CONFIRM_TIME, CONFIRM_IP; an UNSUB_TIME or
                  CLEAN_TIME column (its unsubscribed and cleaned exports)
                  marks rows unsubscribed or bounced
    listmonk      email, name, status (enabled, disabled, blocklisted), created_at

The whole file is read once before anything is imported, so a file in the
wrong encoding, without an email column or with broken quoting is refused
whole, with one line naming where. After that, a bad row is reported as
``FILE:LINE: reason`` and the others go in.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from subscribers.errors import SubscriberError
from subscribers.imports import import_subscribers
from subscribers.models import (
    MAX_IP,
    Candidate,
    ImportReport,
    Problem,
    Status,
    as_utc,
    clean_name,
    normalize_email,
)
from subscribers.store import Store

HEADERS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_address", "e_mail", "e_mail_address", "mail"),
    "name": ("name", "full_name", "fullname", "display_name"),
    "first_name": ("first_name", "firstname", "fname", "given_name"),
    "last_name": ("last_name", "lastname", "lname", "surname", "family_name"),
    "status": ("status", "subscription_status"),
    "created_at": ("created_at", "created", "date_added", "subscribed_at", "timestamp_opt"),
    "consent_at": ("consent_at", "optin_time"),
    "consent_ip": ("consent_ip", "optin_ip"),
    "confirmed_at": ("confirmed_at", "confirm_time"),
    "confirmed_ip": ("confirmed_ip", "confirm_ip"),
    "unsubscribed_at": ("unsubscribed_at", "unsub_time"),
    "cleaned_at": ("clean_time",),
}

STATUSES: dict[str, Status] = {
    **dict.fromkeys(("active", "subscribed", "confirmed", "enabled", "opted_in"), Status.ACTIVE),
    **dict.fromkeys(("pending", "unconfirmed"), Status.PENDING),
    **dict.fromkeys(
        ("unsubscribed", "disabled", "blocklisted", "blacklisted", "opted_out"),
        Status.UNSUBSCRIBED,
    ),
    **dict.fromkeys(("bounced", "cleaned"), Status.BOUNCED),
    **dict.fromkeys(("complained", "spam", "abuse"), Status.COMPLAINED),
}

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
)

_SEPARATORS = re.compile(r"[\s\-]+")
# Cells a spreadsheet would run as a formula; exported with a leading quote.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def import_csv(store: Store, path: Path, *, reactivate: bool = False) -> ImportReport:
    """Import ``path`` into ``store``; problems carry line numbers in ``path``."""
    columns = check_file(path)
    return import_subscribers(
        store, read_rows(path, columns), reactivate=reactivate, label=path.name
    )


def check_file(path: Path) -> dict[str, int]:
    """Read the whole file once: UTF-8, parseable, with an email column.
    Returns the columns found (field name → index). Raises SubscriberError."""
    columns: dict[str, int] | None = None
    with _open(path) as reader:
        try:
            for values in reader:
                if columns is None and any(value.strip() for value in values):
                    columns = _columns(path, values)
        except UnicodeDecodeError:
            raise SubscriberError(
                f"{path}:{_undecodable_line(path)}: not UTF-8 text; "
                "save the file as UTF-8 and import it again"
            ) from None
        except csv.Error as exc:
            raise SubscriberError(f"{path}:{reader.line_num}: {exc}") from None
    if columns is None:
        raise SubscriberError(f"{path}: empty; expected a header row with an email column")
    return columns


def _undecodable_line(path: Path) -> int:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def read_rows(path: Path, columns: dict[str, int]) -> Iterator[Candidate | Problem]:
    """The data rows of a checked file, as candidates or problems."""
    with _open(path) as reader:
        header_seen = False
        read = 0
        for values in reader:
            start, read = read + 1, reader.line_num  # a quoted cell may span lines
            if not any(value.strip() for value in values):
                continue
            if not header_seen:
                header_seen = True
                continue
            yield _candidate(values, columns, start)


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    aliases = {alias: field for field, names in HEADERS.items() for alias in names}
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        field = aliases.get(_SEPARATORS.sub("_", title.strip().lower()))
        if field is not None:
            columns.setdefault(field, index)
    if "email" not in columns:
        found = ", ".join(repr(title) for title in header[:8] if title.strip()) or "nothing"
        raise SubscriberError(
            f"{path}:1: no email column in the header (found {found}); "
            "name one 'email' or 'Email Address'"
        )
    return columns


def _candidate(values: list[str], columns: dict[str, int], line: int) -> Candidate | Problem:
    def cell(field: str) -> str:
        index = columns.get(field)
        if index is None or index >= len(values):
            return ""
        return _unquote(values[index].strip())

    try:
        email = normalize_email(cell("email"))
        name = cell("name") or " ".join(
            part for part in (cell("first_name"), cell("last_name")) if part
        )
        return Candidate(
            email=email,
            line=line,
            name=clean_name(name),
            status=_status(cell("status"), cell("unsubscribed_at"), cell("cleaned_at")),
            created_at=_when("created_at", cell("created_at")),
            consent_at=_when("consent_at", cell("consent_at")),
            consent_ip=cell("consent_ip")[:MAX_IP] or None,
            confirmed_at=_when("confirmed_at", cell("confirmed_at")),
            confirmed_ip=cell("confirmed_ip")[:MAX_IP] or None,
        )
    except SubscriberError as exc:
        return Problem(line, str(exc))


def _status(text: str, unsubscribed_at: str, cleaned_at: str) -> Status:
    if text:
        status = STATUSES.get(_SEPARATORS.sub("_", text.lower()))
        if status is None:
            raise SubscriberError(
                f"status: {text!r} is not one of active, pending, unsubscribed, bounced, complained"
            )
        return status
    if cleaned_at:
        return Status.BOUNCED
    if unsubscribed_at:
        return Status.UNSUBSCRIBED
    return Status.ACTIVE


def _when(field: str, text: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace(" UTC", "Z"))
    except ValueError:
        raise SubscriberError(
            f"{field}: {text!r} is not a date like 2026-01-31 or 2026-01-31T09:00:00Z"
        ) from None
    return as_utc(value)


def _unquote(text: str) -> str:
    """Undo the quote that export puts before formula-like cells."""
    if text.startswith("'") and text[1:2] in _FORMULA:
        return text[1:]
    return text


@contextmanager
def _open(path: Path) -> Iterator[csv.Reader]:  # type: ignore[name-defined]
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise SubscriberError(f"{path}: {exc.strerror}") from None
    with handle:
        yield csv.reader(handle)


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
        writer.writerow(
            (
                subscriber.email,
                _formula_safe(subscriber.name),
                subscriber.status,
                subscriber.source,
                _iso(subscriber.created_at),
                _iso(subscriber.confirmed_at),
                _iso(subscriber.unsubscribed_at),
                _iso(consent.at),
                consent.ip or "",
                _formula_safe(consent.user_agent or ""),
                _formula_safe(consent.text or ""),
                consent.confirmed_ip or "",
            )
        )
        count += 1
    return count


def export_file(store: Store, path: Path, status: Status | None = None) -> int:
    """Export to ``path``, which appears only once complete."""
    with atomic_text(path) as out:
        return export_csv(store, out, status)


@contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """A text file written aside and renamed into place when the block ends
    without error; otherwise removed. Readable by its owner only: it holds
    personal data."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise SubscriberError(f"{path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _formula_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA) else text


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""
