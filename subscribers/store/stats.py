"""The list's health in numbers: how many subscribers in each status, and
what happened to them over the last days.

    subscribers        ──count by status───────────────▶ Stats.by_status
    subscriber_events  ──count by kind, since──────────▶ subscribed, confirmed,
                         (provider-reported: with an        unsubscribed, bounced,
                          external id)                       complained, delivered
    send_recipients    ──sent since────────────────────▶ Stats.sent
    suppressions       ──count─────────────────────────▶ Stats.suppressed

A primitive of a :class:`~subscribers.store.transaction.Transaction`;
:mod:`subscribers.health` judges the rates.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from subscribers.models import EventKind, Stats, Status, utcnow
from subscribers.schema import send_recipients, subscriber_events, subscribers, suppressions

if TYPE_CHECKING:
    from sqlalchemy import Connection


class ListStats:
    """The counts behind ``publish subscribers stats``, on one connection."""

    conn: Connection

    def stats(self, days: int = 30, now: dt.datetime | None = None) -> Stats:
        """Counts by status, and what happened over the last ``days`` days."""
        since = (now or utcnow()) - dt.timedelta(days=days)
        conn = self.conn
        by_status = {
            str(status): int(count)
            for status, count in conn.execute(
                select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
            )
        }
        # Every event by kind, and those the provider reported (events
        # with its feedback id, counted by count(external_id)), as opposed
        # to status changes made here (imports, the transient bounce
        # limit): the rates SES and mailbox providers judge.
        events: dict[str, int] = {}
        reported: dict[str, int] = {}
        for kind, count, from_provider in conn.execute(
            select(
                subscriber_events.c.kind,
                func.count(),
                func.count(subscriber_events.c.external_id),
            )
            .where(subscriber_events.c.at >= since)
            .group_by(subscriber_events.c.kind)
        ):
            events[str(kind)] = int(count)
            if from_provider:
                reported[str(kind)] = int(from_provider)
        sent = conn.execute(
            select(func.count())
            .select_from(send_recipients)
            .where(send_recipients.c.status == "sent")
            .where(send_recipients.c.sent_at >= since)
        ).scalar_one()
        suppressed = conn.execute(select(func.count()).select_from(suppressions)).scalar_one()
        return Stats(
            by_status={str(status): by_status.get(str(status), 0) for status in Status},
            days=days,
            subscribed=events.get(EventKind.SUBSCRIBED, 0) + events.get(EventKind.IMPORTED, 0),
            confirmed=events.get(EventKind.CONFIRMED, 0),
            unsubscribed=events.get(EventKind.UNSUBSCRIBED, 0),
            sent=int(sent),
            bounced=reported.get(EventKind.BOUNCED, 0),
            complained=reported.get(EventKind.COMPLAINED, 0),
            delivered=reported.get(EventKind.DELIVERED, 0),
            suppressed=int(suppressed),
        )
