"""Reading the ledger: where a send stands, and what other parts of the
newsletter look up in it.

    Reports.totals(send)        ──▶ Totals      rows in each state
    Reports.status(send)        ──▶ SendStatus  totals, failures by reason,
                                                rates, workers, feedback,
                                                why readers left
                                                (``publish status``)
    Reports.iter_unsent(send)   ──▶ Claimed...  who a run would send to
    sends_for_messages(conn, ids)  ──▶ SentMessage by provider message id
                                       (bounces and complaints find their send)
    sent_issue_times(engine)       ──▶ slug → when its send began (the archive)

Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from subscribers.ledger.departures import Departures, departures
from subscribers.ledger.records import ROW_STATES, Claimed, SendRecord, stored_id
from subscribers.ledger.sends import Sends
from subscribers.models import as_utc, utcnow
from subscribers.schema import send_recipients as sr
from subscribers.schema import sends, subscriber_events, subscribers

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

FEEDBACK_KINDS = ("delivered", "bounced", "soft_bounced", "bounce_undetermined", "complained")
"""Subscriber events that providers report about a send's messages."""


@dataclass(frozen=True)
class Totals:
    """How many recipient rows of a send are in each state."""

    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.sending + self.sent + self.failed + self.skipped

    @property
    def left(self) -> int:
        """Not yet sent, failed or skipped."""
        return self.pending + self.sending

    @property
    def unsent(self) -> int:
        """Not yet sent or skipped: what the next run would send to."""
        return self.left + self.failed

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "sent": self.sent,
            "failed": self.failed,
            "skipped": self.skipped,
            "pending": self.pending,
            "sending": self.sending,
        }


@dataclass(frozen=True)
class Failure:
    reason: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class SendStatus:
    """Where a send stands, as plain data (``publish status``)."""

    send: SendRecord
    totals: Totals
    failures: tuple[Failure, ...]
    first_sent_at: dt.datetime | None
    last_sent_at: dt.datetime | None
    recent_rate: float
    """Messages per second over the last minute."""
    workers: tuple[str, ...]
    """Workers holding rows in ``sending`` now."""
    events: dict[str, int] = field(default_factory=dict)
    """Provider feedback about this send's messages, by kind (delivered,
    bounced, soft_bounced, complained...), from the subscribers' history."""
    departures: Departures = field(default_factory=Departures)
    """Why the readers this send reached last before they left said they did."""

    @property
    def average_rate(self) -> float:
        if not self.first_sent_at or not self.last_sent_at or self.totals.sent < 2:
            return 0.0
        seconds = (self.last_sent_at - self.first_sent_at).total_seconds()
        return self.totals.sent / seconds if seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        rate = self.recent_rate or self.average_rate
        if not self.totals.left:
            return 0.0
        return self.totals.left / rate if rate else None

    def as_dict(self) -> dict[str, Any]:
        send = self.send
        return {
            "issue": send.issue_slug,
            "path": send.issue_path,
            "subject": send.subject,
            "transport": send.transport,
            "status": send.status,
            "note": send.note,
            "created_at": _iso(send.created_at),
            "finished_at": _iso(send.finished_at),
            "paused_until": _iso(send.paused_until),
            "totals": self.totals.as_dict(),
            "failures": [
                {"reason": f.reason, "count": f.count, "examples": list(f.examples)}
                for f in self.failures
            ],
            "first_sent_at": _iso(self.first_sent_at),
            "last_sent_at": _iso(self.last_sent_at),
            "average_rate": round(self.average_rate, 2),
            "recent_rate": round(self.recent_rate, 2),
            "seconds_left": None if self.seconds_left is None else round(self.seconds_left, 1),
            "workers": list(self.workers),
            "events": dict(self.events),
            "unsubscribe_reasons": self.departures.as_dict(),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


class Reports(Sends):
    """Where a send stands, read without claiming or changing anything."""

    def totals(self, send_id: int) -> Totals:
        def read() -> Totals:
            with self.engine.connect() as conn:
                return _totals(conn, send_id)

        return self._retrying(read, writing=False)

    def first_sent_since(self, send_id: int, since: dt.datetime) -> dt.datetime | None:
        """When the first of this send's messages sent since ``since`` went out."""
        from sqlalchemy import func, select

        def read() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(
                    select(func.min(sr.c.sent_at)).where(
                        sr.c.send_id == send_id, sr.c.status == "sent", sr.c.sent_at >= since
                    )
                ).scalar_one()

        return as_utc(self._retrying(read, writing=False))

    def status(self, send_id: int, *, examples: int = 3, reasons: int = 10) -> SendStatus:
        """Totals, failures grouped by reason, rates and who is sending."""
        return self._retrying(lambda: self._status(send_id, examples, reasons), writing=False)

    def _status(self, send_id: int, examples: int, reasons: int) -> SendStatus:
        from sqlalchemy import func, select

        send = self.get(send_id)
        minute_ago = utcnow() - dt.timedelta(minutes=1)
        with self.engine.connect() as conn:
            totals = _totals(conn, send_id)
            grouped = conn.execute(
                select(sr.c.error, func.count().label("n"))
                .where(sr.c.send_id == send_id, sr.c.status == "failed")
                .group_by(sr.c.error)
                .order_by(func.count().desc())
                .limit(reasons)
            ).all()
            failures = []
            for reason, count in grouped:
                emails = conn.execute(
                    select(sr.c.email)
                    .where(sr.c.send_id == send_id, sr.c.status == "failed", sr.c.error == reason)
                    .order_by(sr.c.id)
                    .limit(examples)
                ).scalars()
                failures.append(Failure(reason or "", int(count), tuple(emails)))
            first, last = conn.execute(
                select(func.min(sr.c.sent_at), func.max(sr.c.sent_at)).where(
                    sr.c.send_id == send_id, sr.c.status == "sent"
                )
            ).one()
            recent = conn.execute(
                select(func.count(), func.min(sr.c.sent_at), func.max(sr.c.sent_at)).where(
                    sr.c.send_id == send_id, sr.c.status == "sent", sr.c.sent_at >= minute_ago
                )
            ).one()
            workers = conn.execute(
                select(sr.c.claimed_by)
                .where(sr.c.send_id == send_id, sr.c.status == "sending")
                .distinct()
            ).scalars()
            worker_ids = tuple(sorted(w for w in workers if w))
            events = {
                str(kind): int(count)
                for kind, count in conn.execute(
                    select(subscriber_events.c.kind, func.count())
                    .where(
                        subscriber_events.c.send_id == send_id,
                        subscriber_events.c.kind.in_(FEEDBACK_KINDS),
                    )
                    .group_by(subscriber_events.c.kind)
                )
            }
            left = departures(conn, send_id)
        recent_rate = 0.0
        if recent[0] and recent[0] > 1 and recent[1] and recent[2]:
            span = (as_utc(recent[2]) or minute_ago) - (as_utc(recent[1]) or minute_ago)
            if span.total_seconds() > 0:
                recent_rate = int(recent[0]) / span.total_seconds()
        return SendStatus(
            send=send,
            totals=totals,
            failures=tuple(failures),
            first_sent_at=as_utc(first),
            last_sent_at=as_utc(last),
            recent_rate=recent_rate if send.status == "sending" else 0.0,
            workers=worker_ids,
            events=events,
            departures=left,
        )

    def iter_unsent(self, send_id: int | None, batch: int = 1000) -> Iterator[Claimed]:
        """The recipients a run would send to, streamed in id order without
        claiming anything: the rows not yet sent or skipped of an existing
        send, or the active subscribers when there is no send yet."""
        from sqlalchemy import select

        last = 0
        while True:
            with self.engine.connect() as conn:
                if send_id is None:
                    rows = conn.execute(
                        select(
                            subscribers.c.id.label("row_id"),
                            subscribers.c.id.label("subscriber_id"),
                            subscribers.c.email,
                            subscribers.c.name,
                        )
                        .where(subscribers.c.status == "active", subscribers.c.id > last)
                        .order_by(subscribers.c.id)
                        .limit(batch)
                    ).all()
                else:
                    rows = conn.execute(
                        select(sr.c.id.label("row_id"), sr.c.subscriber_id, sr.c.email, sr.c.name)
                        .where(
                            sr.c.send_id == send_id,
                            sr.c.status.in_(("pending", "sending", "failed")),
                            sr.c.subscriber_id.is_not(None),
                            sr.c.id > last,
                        )
                        .order_by(sr.c.id)
                        .limit(batch)
                    ).all()
            if not rows:
                return
            for row in rows:
                yield Claimed(int(row.row_id), int(row.subscriber_id), row.email, row.name, 0)
            last = int(rows[-1].row_id)


def _totals(conn: Connection, send_id: int) -> Totals:
    from sqlalchemy import func, select

    counts = {
        str(status): int(count)
        for status, count in conn.execute(
            select(sr.c.status, func.count()).where(sr.c.send_id == send_id).group_by(sr.c.status)
        )
    }
    return Totals(**{state: counts.get(state, 0) for state in ROW_STATES})


@dataclass(frozen=True)
class SentMessage:
    """Which send (and issue) a provider message id belongs to."""

    send_id: int
    issue_slug: str


def sends_for_messages(conn: Connection, message_ids: Sequence[str]) -> dict[str, SentMessage]:
    """The send and issue of each provider message id found in the ledger,
    keyed by the ids as given."""
    wanted = {message_id: stored_id(message_id) for message_id in message_ids if message_id}
    if not wanted:
        return {}
    rows = conn.execute(_sends_for_messages(), {"ids": sorted(set(wanted.values()))})
    found = {row.message_id: SentMessage(int(row.send_id), row.issue_slug) for row in rows}
    return {given: found[stored] for given, stored in wanted.items() if stored in found}


@cache
def _sends_for_messages() -> Any:
    """The statement, built once: feedback arrives ten messages at a time."""
    from sqlalchemy import bindparam, select

    return (
        select(sr.c.message_id, sr.c.send_id, sends.c.issue_slug)
        .join(sends, sends.c.id == sr.c.send_id)
        .where(sr.c.message_id.in_(bindparam("ids", expanding=True)))
    )


def sent_issue_times(engine: Engine) -> dict[str, dt.datetime]:
    """When each issue was published: the slug of every issue with a send,
    mapped to the moment its send was created."""
    from sqlalchemy import select

    with engine.connect() as conn:
        rows = conn.execute(select(sends.c.issue_slug, sends.c.created_at)).all()
    return {row.issue_slug: as_utc(row.created_at) or utcnow() for row in rows}
