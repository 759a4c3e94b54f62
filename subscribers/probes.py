"""Delivery probes: messages sent to SES's mailbox simulator to prove that
feedback comes back through the events path (``publish doctor --live``).

    add(conn, probes)              the probes just sent, by SES message id
    record(conn, feedback, now)    in the events path: feedback about a probe
                                   is kept on its row (True), not applied to
                                   anyone; False when it is about no probe
    read(conn, message_ids)        the probes as they stand
    delete_before(conn, moment)    forget old probes

The simulator's addresses are never subscribers: the events path calls
:func:`record` only for feedback about an address that is not on the list.
A bounce or complaint replaces a delivery, never the other way round: the
complaint simulator's delivery is kept until its complaint arrives.

Feedback may come before the probe is added (``publish serve`` can be
quicker than the sender's own write): feedback about a simulator address
with no probe yet starts the row, and :func:`add` completes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, or_, select, update

from subscribers.models import as_utc, dump_detail, load_detail
from subscribers.notifications import Feedback, Kind
from subscribers.schema import delivery_probes

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection

SIMULATOR_DOMAIN = "simulator.amazonses.com"
"""SES's mailbox simulator: mail to it reaches no one."""


@dataclass(frozen=True)
class Probe:
    message_id: str
    recipient: str
    expected: str
    """``delivery``, ``bounce`` or ``complaint``: what the address answers."""
    created_at: dt.datetime
    kind: str = ""
    """The feedback recorded; empty until some arrives."""
    bounce_type: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: dt.datetime | None = None

    @property
    def answered(self) -> bool:
        """The expected feedback arrived."""
        return self.kind == self.expected

    def feedback(self) -> Feedback | None:
        """What was recorded, as the events path parsed it; None before anything."""
        if not self.kind:
            return None
        return Feedback(
            kind=cast(Kind, self.kind),  # written from a Feedback's kind
            recipient=self.recipient,
            message_id=self.message_id,
            event_id="",
            at=self.recorded_at or self.created_at,
            bounce_type=self.bounce_type,
            detail={str(k): str(v) for k, v in self.detail.items()},
        )


def add(conn: Connection, probes: Iterable[Probe]) -> None:
    """Keep the probes just sent; a row their feedback started is completed."""
    table = delivery_probes
    for probe in probes:
        values = {
            "recipient": probe.recipient,
            "expected": probe.expected,
            "created_at": probe.created_at,
        }
        done = conn.execute(
            update(table).where(table.c.message_id == probe.message_id).values(**values)
        )
        if not done.rowcount:
            conn.execute(table.insert().values(message_id=probe.message_id, **values))


def record(conn: Connection, item: Feedback, now: dt.datetime) -> bool:
    """Keep ``item`` on its probe's row; False when its message is no probe."""
    table = delivery_probes
    found = conn.execute(
        select(table.c.kind).where(table.c.message_id == item.message_id)
    ).first()
    detail = dict(item.detail)
    if item.bounce_type:
        detail["bounce_type"] = item.bounce_type
    values = {"kind": item.kind, "detail": dump_detail(detail), "recorded_at": now}
    if found is None:
        if item.recipient.rpartition("@")[2].lower() != SIMULATOR_DOMAIN:
            return False
        conn.execute(table.insert().values(
            message_id=item.message_id, recipient=item.recipient, expected="",
            created_at=now, **values,
        ))
        return True
    replaces: ColumnElement[bool] = table.c.kind.is_(None)
    if item.kind != "delivery":
        replaces = or_(replaces, table.c.kind == "delivery")
    conn.execute(
        update(table).where(table.c.message_id == item.message_id, replaces).values(**values)
    )
    return True


def read(conn: Connection, message_ids: Sequence[str]) -> dict[str, Probe]:
    if not message_ids:
        return {}
    rows = conn.execute(
        select(delivery_probes).where(delivery_probes.c.message_id.in_(list(message_ids)))
    )
    probes = {}
    for row in rows:
        detail = dict(load_detail(row.detail))
        bounce_type = str(detail.pop("bounce_type", ""))
        created = as_utc(row.created_at)
        assert created is not None
        probes[row.message_id] = Probe(
            message_id=row.message_id,
            recipient=row.recipient,
            expected=row.expected,
            created_at=created,
            kind=row.kind or "",
            bounce_type=bounce_type,
            detail=detail,
            recorded_at=as_utc(row.recorded_at),
        )
    return probes


def delete_before(conn: Connection, moment: dt.datetime) -> int:
    """Delete the probes sent before ``moment``; how many."""
    result = conn.execute(delete(delivery_probes).where(delivery_probes.c.created_at < moment))
    return int(result.rowcount or 0)
