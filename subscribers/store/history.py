"""The ``subscriber_events`` table: each subscriber's history.

    add_event, add_events        what happened (subscribed, confirmed,
                                 bounced...), with its detail as JSON, the
                                 send it concerns and the provider's
                                 feedback id
    history, count_events        a subscriber's events, oldest first; how
                                 many of a kind (since a moment)
    latest_event, amend_event    a subscriber's newest event of a kind; its
                                 detail and send replaced (a reason for
                                 leaving, given after the fact)
    has_external_id,             whether a provider's feedback was already
    existing_external_ids        recorded: what makes feedback idempotent

Primitives of a :class:`~subscribers.store.transaction.Transaction`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update

from subscribers.models import Event, EventKind, dump_detail, utcnow
from subscribers.schema import subscriber_events
from subscribers.store.rows import to_event

if TYPE_CHECKING:
    from sqlalchemy import Connection

_INSERT_EVENT = insert(subscriber_events)
_RECORDED = select(subscriber_events.c.external_id).where(
    subscriber_events.c.external_id.in_(bindparam("ids", expanding=True))
)


class HistoryRows:
    """Reading and adding to subscribers' histories on one connection."""

    conn: Connection

    def add_event(
        self,
        subscriber_id: int,
        kind: EventKind | str,
        detail: Mapping[str, Any] | None = None,
        *,
        send_id: int | None = None,
        external_id: str | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        self.conn.execute(
            _INSERT_EVENT,
            {
                "subscriber_id": subscriber_id,
                "kind": str(kind),
                "at": at or utcnow(),
                "detail": dump_detail(detail),
                "send_id": send_id,
                "external_id": external_id,
            },
        )

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert many events: dicts with subscriber_id, kind, at and detail (JSON)."""
        if rows:
            self.conn.execute(insert(subscriber_events), rows)

    def history(self, subscriber_id: int) -> list[Event]:
        """The subscriber's events, oldest first."""
        query = (
            select(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .order_by(subscriber_events.c.at, subscriber_events.c.id)
        )
        return [to_event(row) for row in self.conn.execute(query)]

    def count_events(
        self, subscriber_id: int, kind: EventKind | str, since: dt.datetime | None = None
    ) -> int:
        """How many ``kind`` events the subscriber has had (since ``since``)."""
        query = (
            select(func.count())
            .select_from(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .where(subscriber_events.c.kind == str(kind))
        )
        if since is not None:
            query = query.where(subscriber_events.c.at >= since)
        return int(self.conn.execute(query).scalar_one())

    def latest_event(self, subscriber_id: int, kind: EventKind | str) -> Event | None:
        """The subscriber's newest ``kind`` event, if they have one."""
        query = (
            select(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .where(subscriber_events.c.kind == str(kind))
            .order_by(subscriber_events.c.at.desc(), subscriber_events.c.id.desc())
            .limit(1)
        )
        row = self.conn.execute(query).first()
        return to_event(row) if row else None

    def amend_event(
        self, event_id: int, detail: Mapping[str, Any], *, send_id: int | None
    ) -> None:
        """Replace an event's detail and the send it concerns."""
        self.conn.execute(
            update(subscriber_events)
            .where(subscriber_events.c.id == event_id)
            .values(detail=dump_detail(detail), send_id=send_id)
        )

    def has_external_id(self, external_id: str) -> bool:
        """Whether an event was already recorded under ``external_id``."""
        return bool(self.existing_external_ids([external_id]))

    def existing_external_ids(self, external_ids: Sequence[str]) -> set[str]:
        """Those of ``external_ids`` already recorded in someone's history."""
        if not external_ids:
            return set()
        rows = self.conn.execute(_RECORDED, {"ids": sorted(set(external_ids))})
        return {str(value) for value in rows.scalars()}
