"""What `publish report` and `publish status ISSUE` read about the list and
its sends: plain rows, no judgement (the rates and weeks are the pipeline's).

    read_report(conn, since) ──▶ ReportRows
        sends      every send, oldest first: sent, failed, the feedback
                   SES reported about its messages, the unsubscribes
                   attributed to it and the reasons given
        history    the moments readers signed up, confirmed, unsubscribed,
                   bounced or complained since ``since``, and the spans of
                   time each subscriber was active (all of them)
        sources    subscribers by the source kept with their consent, and status
    unsubscribes_by_send(conn) ──▶ {send id: readers who left after it}

An unsubscribe is attributed to the send its event names (the one a reason
was given for, :mod:`subscribers.leaving`) or else to the send whose message
last reached the reader before they left, as
:func:`~subscribers.ledger.departures.last_send_reaching` finds it.

When a subscriber was active is read back from their history: every event
that changed their status records the status it changed ``from``, so the
status between two such events is the later one's ``from``, and after the
last one it is the status they have now. Erased readers have no history
left and count nowhere. Events that imports wrote (``source: import``) are
list keeping, not readers acting: they move the active count but are not
counted as unsubscribes, bounces or complaints. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from subscribers.ledger import FEEDBACK_KINDS
from subscribers.ledger.departures import departures
from subscribers.models import EventKind, Source, Status, as_utc, load_detail
from subscribers.schema import send_recipients as sr
from subscribers.schema import sends, subscriber_events, subscribers

if TYPE_CHECKING:
    from sqlalchemy import Connection

MEASURED = {
    str(EventKind.SUBSCRIBED): "signups",
    str(EventKind.CONFIRMED): "confirmations",
    str(EventKind.UNSUBSCRIBED): "unsubscribes",
    str(EventKind.BOUNCED): "bounces",
    str(EventKind.COMPLAINED): "complaints",
}
"""The history events counted per week, by the name the report gives them."""
_READERS_ONLY = ("unsubscribes", "bounces", "complaints")
"""Measures an import's events do not count towards."""


@dataclass(frozen=True)
class SendFigures:
    """One send, counted."""

    send_id: int
    issue_slug: str
    subject: str
    created_at: dt.datetime
    status: str
    sent: int
    failed: int
    feedback: dict[str, int]
    """Events SES reported about the send's messages, by kind
    (:data:`~subscribers.ledger.FEEDBACK_KINDS`, every one named)."""
    unsubscribed: int
    """Readers whose leaving is attributed to this send."""
    reasons: dict[str, int]
    """Why they said they left, per reason (those who said)."""


@dataclass(frozen=True)
class ListHistory:
    """The list over time, as moments and spans."""

    first_at: dt.datetime | None
    """The oldest event in anyone's history: when the list's history begins."""
    events: tuple[tuple[str, dt.datetime], ...]
    """``(measure, moment)`` since the ``since`` asked for, oldest first;
    measures are the values of :data:`MEASURED`."""
    active: tuple[tuple[dt.datetime, dt.datetime | None], ...]
    """When each subscriber was active: ``(from, until)``, None for until now."""


@dataclass(frozen=True)
class SourceCount:
    source: str | None
    """The page the signup was made on; None when none was kept."""
    status: str
    count: int


@dataclass(frozen=True)
class ReportRows:
    sends: tuple[SendFigures, ...]
    history: ListHistory
    sources: tuple[SourceCount, ...]


def read_report(conn: Connection, since: dt.datetime) -> ReportRows:
    """Everything the report shows, read in one go on ``conn``."""
    return ReportRows(
        sends=tuple(_sends(conn)),
        history=ListHistory(
            first_at=as_utc(conn.execute(select(func.min(subscriber_events.c.at))).scalar()),
            events=tuple(_measured(conn, since)),
            active=tuple(_active_spans(conn)),
        ),
        sources=tuple(
            SourceCount(source, str(status), int(count))
            for source, status, count in conn.execute(
                select(subscribers.c.consent_source, subscribers.c.status, func.count())
                .group_by(subscribers.c.consent_source, subscribers.c.status)
                .order_by(subscribers.c.consent_source, subscribers.c.status)
            )
        ),
    )


def _attributed_send() -> Any:
    """The send an ``unsubscribed`` event is attributed to (see the module's
    docstring), as a column of a query over ``subscriber_events``."""
    last_reaching = (
        select(sr.c.send_id)
        .where(
            sr.c.subscriber_id == subscriber_events.c.subscriber_id,
            sr.c.status == "sent",
            sr.c.sent_at <= subscriber_events.c.at,
        )
        .order_by(sr.c.sent_at.desc(), sr.c.id.desc())
        .limit(1)
        .correlate(subscriber_events)
        .scalar_subquery()
    )
    return func.coalesce(subscriber_events.c.send_id, last_reaching)


def unsubscribes_by_send(conn: Connection, send_id: int | None = None) -> Counter[int]:
    """How many readers left after each send (only ``send_id``'s, if given)."""
    attributed = _attributed_send().label("send_id")
    query = select(attributed).where(subscriber_events.c.kind == str(EventKind.UNSUBSCRIBED))
    if send_id is not None:
        query = query.where(attributed == send_id)
    return Counter(int(found) for (found,) in conn.execute(query) if found is not None)


def _sends(conn: Connection) -> list[SendFigures]:
    rows: dict[int, dict[str, int]] = defaultdict(dict)
    for send_id, status, count in conn.execute(
        select(sr.c.send_id, sr.c.status, func.count()).group_by(sr.c.send_id, sr.c.status)
    ):
        rows[int(send_id)][str(status)] = int(count)
    feedback: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FEEDBACK_KINDS, 0))
    for send_id, kind, count in conn.execute(
        select(subscriber_events.c.send_id, subscriber_events.c.kind, func.count())
        .where(
            subscriber_events.c.send_id.is_not(None),
            subscriber_events.c.kind.in_(FEEDBACK_KINDS),
        )
        .group_by(subscriber_events.c.send_id, subscriber_events.c.kind)
    ):
        feedback[int(send_id)][str(kind)] = int(count)
    left = unsubscribes_by_send(conn)
    found = []
    for send in conn.execute(select(sends).order_by(sends.c.created_at, sends.c.id)):
        counts = rows.get(int(send.id), {})
        found.append(
            SendFigures(
                send_id=int(send.id),
                issue_slug=send.issue_slug,
                subject=send.subject,
                created_at=as_utc(send.created_at) or dt.datetime.now(dt.UTC),
                status=str(send.status),
                sent=counts.get("sent", 0),
                failed=counts.get("failed", 0),
                feedback=dict(feedback[int(send.id)]),
                unsubscribed=left.get(int(send.id), 0),
                reasons=departures(conn, int(send.id)).reasons,
            )
        )
    return found


def _measured(conn: Connection, since: dt.datetime) -> list[tuple[str, dt.datetime]]:
    found = []
    for kind, at, text in conn.execute(
        select(subscriber_events.c.kind, subscriber_events.c.at, subscriber_events.c.detail)
        .where(subscriber_events.c.kind.in_(MEASURED), subscriber_events.c.at >= since)
        .order_by(subscriber_events.c.at, subscriber_events.c.id)
    ):
        measure = MEASURED[str(kind)]
        if measure in _READERS_ONLY and load_detail(text).get("source") == str(Source.IMPORT):
            continue
        moment = as_utc(at)
        if moment is not None:
            found.append((measure, moment))
    return found


def _active_spans(conn: Connection) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """When each subscriber was active, from their status changes (see the
    module's docstring)."""
    changes: dict[int, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for subscriber_id, at, text in conn.execute(
        select(
            subscriber_events.c.subscriber_id, subscriber_events.c.at, subscriber_events.c.detail
        )
        .where(subscriber_events.c.detail.like('%"from"%'))
        .order_by(subscriber_events.c.at, subscriber_events.c.id)
    ):
        was = load_detail(text).get("from")
        moment = as_utc(at)
        if isinstance(was, str) and moment is not None:
            changes[int(subscriber_id)].append((moment, was))
    spans = []
    for subscriber_id, created_at, status in conn.execute(
        select(subscribers.c.id, subscribers.c.created_at, subscribers.c.status)
    ):
        created = as_utc(created_at)
        assert created is not None
        steps = changes.get(int(subscriber_id), [])
        starts = [created] + [max(created, at) for at, _ in steps]
        ends: list[dt.datetime | None] = [*starts[1:], None]
        states = [was for _, was in steps] + [str(status)]
        for start, end, state in zip(starts, ends, states, strict=True):
            if state == Status.ACTIVE and (end is None or end > start):
                spans.append((start, end))
    return spans


__all__ = [
    "MEASURED",
    "ListHistory",
    "ReportRows",
    "SendFigures",
    "SourceCount",
    "read_report",
    "unsubscribes_by_send",
]
