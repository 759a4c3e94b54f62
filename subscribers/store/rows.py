"""Rows to models and models to rows: the column values of a new subscriber,
and the :mod:`subscribers.models` objects made from what a query returns.

    Subscriber fields ──new_row()──────────▶ {column: value}  (INSERT)
    Consent           ──consent_columns()──▶ {column: value}  (UPDATE)
    subscribers row   ──to_subscriber()────▶ Subscriber
    signups row       ──to_signup()────────▶ Signup
    subscriber_events ──to_event()─────────▶ Event

No SQL is run here; :func:`chunks` cuts long inputs into batches for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from subscribers.models import (
    Consent,
    Event,
    Signup,
    Source,
    Status,
    Subscriber,
    as_utc,
    email_key,
    load_detail,
    mailbox_key,
    utcnow,
)
from subscribers.schema import subscribers

if TYPE_CHECKING:
    from sqlalchemy import Row, Select

BATCH = 1000
"""Rows per statement or per fetch where a list is read or written whole."""


def new_row(
    email: str,
    name: str,
    status: Status,
    source: Source,
    consent: Consent | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The column values of a new subscriber (``email`` already normalized)."""
    now = utcnow()
    consent = consent or Consent()
    return {
        "email": email,
        "email_key": email_key(email),
        "mailbox_key": mailbox_key(email),
        "name": name,
        "status": str(status),
        "source": str(source),
        "created_at": created_at or now,
        "updated_at": now,
        "confirmed_at": consent.confirmed_at,
        "unsubscribed_at": now if status == Status.UNSUBSCRIBED else None,
        **consent_columns(consent),
        "confirmed_ip": consent.confirmed_ip,
        "confirmed_user_agent": consent.confirmed_user_agent,
        "confirmation_sent_at": None,
        "confirmation_due_at": None,
    }


def consent_columns(consent: Consent) -> dict[str, Any]:
    """The consent record as column values, for an update."""
    return {
        "consent_at": consent.at,
        "consent_ip": consent.ip,
        "consent_user_agent": consent.user_agent,
        "consent_text": consent.text,
        "consent_source": consent.source,
    }


def to_subscriber(row: Row[Any] | Mapping[str, Any]) -> Subscriber:
    """A ``subscribers`` row (or its values as a mapping) as a :class:`Subscriber`."""
    data: Mapping[Any, Any] = row if isinstance(row, Mapping) else row._mapping
    return Subscriber(
        id=int(data["id"]),
        email=data["email"],
        name=data["name"] or "",
        status=Status(data["status"]),
        source=Source(data["source"]),
        created_at=as_utc(data["created_at"]) or utcnow(),
        updated_at=as_utc(data["updated_at"]) or utcnow(),
        confirmed_at=as_utc(data["confirmed_at"]),
        unsubscribed_at=as_utc(data["unsubscribed_at"]),
        confirmation_sent_at=as_utc(data["confirmation_sent_at"]),
        consent=Consent(
            at=as_utc(data["consent_at"]),
            ip=data["consent_ip"],
            user_agent=data["consent_user_agent"],
            text=data["consent_text"],
            confirmed_at=as_utc(data["confirmed_at"]),
            confirmed_ip=data["confirmed_ip"],
            confirmed_user_agent=data["confirmed_user_agent"],
            source=data.get("consent_source"),
        ),
    )


def to_signup(row: Row[Any] | Mapping[str, Any]) -> Signup:
    """A ``signups`` row (or its values as a mapping) as a :class:`Signup`."""
    data: Mapping[Any, Any] = row if isinstance(row, Mapping) else row._mapping
    return Signup(
        id=int(data["id"]),
        subscriber_id=int(data["subscriber_id"]),
        nonce=data["nonce"],
        name=data["name"] or "",
        consent=Consent(
            at=as_utc(data["consent_at"]),
            ip=data["consent_ip"],
            user_agent=data["consent_user_agent"],
            text=data["consent_text"],
            source=data.get("consent_source"),
        ),
        created_at=as_utc(data["created_at"]) or utcnow(),
        mailed_at=as_utc(data["mailed_at"]),
    )


def to_event(row: Row[Any]) -> Event:
    """A ``subscriber_events`` row as an :class:`Event`."""
    return Event(
        id=int(row.id),
        subscriber_id=int(row.subscriber_id),
        kind=row.kind,
        at=as_utc(row.at) or utcnow(),
        detail=load_detail(row.detail),
        send_id=row.send_id,
        external_id=row.external_id,
    )


def with_status(query: Select[Any], status: Status | None) -> Select[Any]:
    """``query`` narrowed to subscribers with ``status`` (all of them for None)."""
    return query if status is None else query.where(subscribers.c.status == str(status))


def chunks(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
