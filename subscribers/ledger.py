"""The send ledger: one row per send, one per recipient, and where each stands.

    pending ──claim──▶ sending ──▶ sent      (with the provider's message id)
       ▲                  │    ──▶ failed    (with the error; retried next run)
       └──── release ─────┘    ──▶ skipped   (left the list since the snapshot)

:meth:`Ledger.start` creates a send and snapshots its recipients (the active
subscribers at that moment) in the same transaction, with one
``INSERT ... SELECT``. Senders then :meth:`~Ledger.claim` small batches:
on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``, so several
processes share one send without ever claiming the same row; on SQLite
inside a ``BEGIN IMMEDIATE`` transaction, which makes claims one at a time.
A recipient who unsubscribed, bounced, complained or was erased since the
snapshot is skipped at claim time.

Each claim is stamped with its worker (``host:pid:nonce``). A row a crash
left in ``sending`` is *ambiguous*: the message may or may not have gone.
It is recognised by its worker being gone (same host, process no longer
running) or silent for longer than :data:`LEASE` (a live worker refreshes
its claims with :meth:`~Ledger.heartbeat`), and :meth:`~Ledger.resume`
decides it: resend (a duplicate is better than a miss) or skip.

All the SQL for ``sends`` and ``send_recipients`` is here.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from subscribers import db
from subscribers.errors import StoreError
from subscribers.models import as_utc, utcnow
from subscribers.schema import send_recipients, sends, subscriber_events, subscribers

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Row

LEASE = dt.timedelta(minutes=2)
"""A claim not refreshed for this long belongs to a worker presumed dead."""
HEARTBEAT = dt.timedelta(seconds=20)
"""How often a live worker should call :meth:`Ledger.heartbeat`."""

SendState = Literal["sending", "paused", "stopped", "done"]
RowState = Literal["pending", "sending", "sent", "failed", "skipped"]
Ambiguous = Literal["resend", "skip"]
ROW_STATES: tuple[RowState, ...] = ("pending", "sending", "sent", "failed", "skipped")
MESSAGE_ID_LENGTH = 300
"""send_recipients.message_id's width: longer provider ids are kept cut short."""
FEEDBACK_KINDS = ("delivered", "bounced", "soft_bounced", "bounce_undetermined", "complained")
"""Subscriber events that providers report about a send's messages."""

sr = send_recipients


@dataclass(frozen=True)
class SendRecord:
    """One issue sent to the list."""

    id: int
    issue_slug: str
    issue_path: str
    subject: str
    transport: str
    status: str
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    paused_until: dt.datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class Claimed:
    """A recipient row claimed by this worker: send them the message."""

    row_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row.

    ``status`` is ``sent`` (with ``message_id``), ``failed`` (with
    ``error``), ``skipped`` (with ``error`` as the reason) or ``pending``:
    released unsent, e.g. on Ctrl-C or a paused send; with ``error`` when an
    attempt was made, which then still counts.
    """

    row_id: int
    status: Literal["sent", "failed", "skipped", "pending"]
    message_id: str | None = None
    error: str | None = None
    at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Resumed:
    """What :meth:`Ledger.resume` found and decided before a run."""

    ambiguous: int = 0
    """Rows a crashed run left in ``sending``."""
    ambiguous_action: str = "resend"
    retried: int = 0
    """Failed rows put back to pending."""


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
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def new_worker_id() -> str:
    """``host:pid:nonce``, unique to one sending process (or Ledger)."""
    host = socket.gethostname()[:60].replace(":", "_") or "localhost"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def _worker_is_gone(worker: str | None, here: str) -> bool:
    """True when ``worker`` ran on this host and its process is no more.
    Workers on other hosts are judged by their lease instead."""
    if not worker:
        return True
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != here.partition(":")[0] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _is_stale(
    updated_at: dt.datetime | None, worker: str | None, here: str, cutoff: dt.datetime
) -> bool:
    """True when a claim last refreshed at ``updated_at`` by ``worker`` belongs
    to a worker presumed dead: its lease ran out (``cutoff``) or, on this
    host, its process is gone."""
    return (as_utc(updated_at) or cutoff) <= cutoff or _worker_is_gone(worker, here)


def _record(row: Row[Any]) -> SendRecord:
    return SendRecord(
        id=int(row.id),
        issue_slug=row.issue_slug,
        issue_path=row.issue_path,
        subject=row.subject,
        transport=row.transport,
        status=row.status,
        created_at=as_utc(row.created_at) or utcnow(),
        finished_at=as_utc(row.finished_at),
        paused_until=as_utc(row.paused_until),
        note=row.note or "",
    )


class Ledger:
    """The sends and their recipients in one database, for one worker."""

    def __init__(self, engine: Engine, worker: str | None = None) -> None:
        self.engine = engine
        self.worker = worker or new_worker_id()
        self._last_heartbeat = utcnow()

    # -- sends ----------------------------------------------------------------

    def find(self, slug: str) -> SendRecord | None:
        """The send of the issue with this slug, if it was ever started."""
        from sqlalchemy import select

        with self.engine.connect() as conn:
            row = conn.execute(select(sends).where(sends.c.issue_slug == slug)).first()
        return _record(row) if row else None

    def get(self, send_id: int) -> SendRecord:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            row = conn.execute(select(sends).where(sends.c.id == send_id)).first()
        if row is None:
            raise StoreError(f"send {send_id}: not found")
        return _record(row)

    def sends(self) -> list[SendRecord]:
        """Every send, newest first."""
        from sqlalchemy import select

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sends).order_by(sends.c.created_at.desc(), sends.c.id.desc())
            )
            return [_record(row) for row in rows]

    def active_count(self) -> int:
        """Subscribers a send started now would go to."""
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(subscribers)
                    .where(subscribers.c.status == "active")
                ).scalar_one()
            )

    def start(self, slug: str, path: str, subject: str, transport: str) -> tuple[SendRecord, bool]:
        """The issue's send, created with its recipient snapshot if it has none.

        Returns ``(send, created)``. Two processes starting the same issue at
        once get the same send: the slug is unique, and the loser of the race
        reads the winner's row.
        """
        from sqlalchemy import insert, literal, select
        from sqlalchemy.exc import IntegrityError

        existing = self.find(slug)
        if existing is not None:
            return existing, False
        now = utcnow()
        try:
            with db.writing(self.engine) as conn:
                send_id = conn.execute(
                    insert(sends)
                    .values(
                        issue_slug=slug,
                        issue_path=path[:1000],
                        subject=subject[:998],
                        transport=transport,
                        status="sending",
                        created_at=now,
                        note="",
                    )
                    .returning(sends.c.id)
                ).scalar_one()
                snapshot = select(
                    literal(send_id, sr.c.send_id.type),
                    subscribers.c.id,
                    subscribers.c.email,
                    subscribers.c.name,
                    literal("pending", sr.c.status.type),
                    literal(0, sr.c.attempts.type),
                    literal(now, sr.c.updated_at.type),
                ).where(subscribers.c.status == "active")
                conn.execute(
                    insert(sr).from_select(
                        [
                            "send_id",
                            "subscriber_id",
                            "email",
                            "name",
                            "status",
                            "attempts",
                            "updated_at",
                        ],
                        snapshot,
                    )
                )
        except IntegrityError:
            existing = self.find(slug)
            if existing is None:
                raise
            return existing, False
        return self.get(int(send_id)), True

    def set_status(
        self,
        send_id: int,
        status: SendState,
        *,
        note: str | None = None,
        paused_until: dt.datetime | None = None,
    ) -> None:
        """Move the send to ``status``; ``done`` stamps ``finished_at``."""
        from sqlalchemy import update

        values: dict[str, Any] = {
            "status": status,
            "paused_until": paused_until if status == "paused" else None,
            "finished_at": utcnow() if status == "done" else None,
        }
        if note is not None:
            values["note"] = note
        with db.writing(self.engine) as conn:
            conn.execute(update(sends).where(sends.c.id == send_id).values(**values))

    # -- before a run ---------------------------------------------------------

    def stale_claims(self, send_id: int) -> list[tuple[int, str | None]]:
        """``(row id, worker)`` of rows in ``sending`` whose worker is gone."""
        from sqlalchemy import select

        cutoff = utcnow() - LEASE
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sr.c.id, sr.c.claimed_by, sr.c.updated_at).where(
                    sr.c.send_id == send_id, sr.c.status == "sending"
                )
            ).all()
        return [
            (int(row.id), row.claimed_by)
            for row in rows
            if _is_stale(row.updated_at, row.claimed_by, self.worker, cutoff)
        ]

    def live_workers(self, send_id: int) -> tuple[str, ...]:
        """Other workers holding claims on this send that look alive."""
        from sqlalchemy import select

        cutoff = utcnow() - LEASE
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sr.c.claimed_by, sr.c.updated_at)
                .where(sr.c.send_id == send_id, sr.c.status == "sending")
                .distinct()
            ).all()
        return tuple(
            sorted(
                {
                    row.claimed_by
                    for row in rows
                    if row.claimed_by != self.worker
                    and not _is_stale(row.updated_at, row.claimed_by, self.worker, cutoff)
                }
            )
        )

    def resume(self, send_id: int, on_ambiguous: Ambiguous = "resend") -> Resumed:
        """Make a send ready for another run: decide the rows a crash left in
        ``sending`` (resend: back to pending; skip: skipped) and put failed
        rows back to pending so they are tried again."""
        from sqlalchemy import bindparam, update

        stale = self.stale_claims(send_id)
        now = utcnow()
        with db.writing(self.engine) as conn:
            if stale:
                if on_ambiguous == "resend":
                    values: dict[str, Any] = {"status": "pending", "claimed_by": None}
                else:
                    values = {
                        "status": "skipped",
                        "error": "may have been sent before an interrupted run (skipped)",
                    }
                conn.execute(
                    update(sr)
                    .where(
                        sr.c.id == bindparam("row_id"),
                        sr.c.status == "sending",
                        _claimed_by_is(bindparam("worker")),
                    )
                    .values(updated_at=now, **values),
                    [{"row_id": row_id, "worker": worker} for row_id, worker in stale],
                )
            retried = conn.execute(
                update(sr)
                .where(sr.c.send_id == send_id, sr.c.status == "failed")
                .values(status="pending", claimed_by=None, updated_at=now)
            ).rowcount
        return Resumed(
            ambiguous=len(stale), ambiguous_action=on_ambiguous, retried=int(retried or 0)
        )

    # -- the run --------------------------------------------------------------

    def claim(
        self, send_id: int, limit: int, done: Sequence[Outcome] = ()
    ) -> tuple[list[Claimed], list[Outcome]]:
        """Record ``done``, then claim up to ``limit`` pending rows, in one
        transaction. Returns the rows to send and those skipped because the
        subscriber has left the list since the snapshot."""
        from sqlalchemy import select, update

        now = utcnow()
        with db.writing(self.engine) as conn:
            if done:
                self._record(conn, done, now)
            if limit <= 0:
                return [], []
            picked = (
                select(sr.c.id)
                .where(sr.c.send_id == send_id, sr.c.status == "pending")
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = conn.execute(
                update(sr)
                .where(sr.c.id.in_(picked.scalar_subquery()))
                .values(
                    status="sending",
                    claimed_by=self.worker,
                    attempts=sr.c.attempts + 1,
                    updated_at=now,
                )
                .returning(sr.c.id, sr.c.subscriber_id, sr.c.email, sr.c.name, sr.c.attempts)
            ).all()
            if not rows:
                return [], []
            ids = [row.subscriber_id for row in rows if row.subscriber_id is not None]
            left = {
                int(sub.id): str(sub.status)
                for sub in conn.execute(
                    select(subscribers.c.id, subscribers.c.status).where(
                        subscribers.c.id.in_(ids), subscribers.c.status != "active"
                    )
                )
            }
            claimed: list[Claimed] = []
            skipped: list[Outcome] = []
            for row in sorted(rows, key=lambda r: int(r.id)):
                if row.subscriber_id is None or not row.email:
                    skipped.append(Outcome(int(row.id), "skipped", error="erased", at=now))
                elif int(row.subscriber_id) in left:
                    reason = f"{left[int(row.subscriber_id)]} since the send began"
                    skipped.append(Outcome(int(row.id), "skipped", error=reason, at=now))
                else:
                    claimed.append(
                        Claimed(
                            row_id=int(row.id),
                            subscriber_id=int(row.subscriber_id),
                            email=row.email,
                            name=row.name or "",
                            attempts=int(row.attempts),
                        )
                    )
            if skipped:
                self._record(conn, skipped, now)
        return claimed, skipped

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write what became of claimed rows."""
        if outcomes:
            with db.writing(self.engine) as conn:
                self._record(conn, outcomes, utcnow())

    def _record(self, conn: Connection, outcomes: Sequence[Outcome], now: dt.datetime) -> None:
        from sqlalchemy import bindparam, update

        sent = [o for o in outcomes if o.status == "sent"]
        if sent:
            # A sent message is a fact whoever holds the claim now: always recorded.
            conn.execute(
                update(sr)
                .where(sr.c.id == bindparam("row_id"))
                .values(
                    status="sent",
                    message_id=bindparam("message_id"),
                    sent_at=bindparam("at"),
                    updated_at=now,
                    error=None,
                ),
                [
                    {"row_id": o.row_id, "message_id": _stored_id(o.message_id), "at": o.at}
                    for o in sent
                ],
            )
        for status in ("failed", "skipped"):
            batch = [o for o in outcomes if o.status == status]
            if batch:
                conn.execute(
                    update(sr)
                    .where(sr.c.id == bindparam("row_id"), *self._held())
                    .values(status=status, error=bindparam("error"), updated_at=now),
                    [{"row_id": o.row_id, "error": (o.error or "")[:2000]} for o in batch],
                )
        released = [o for o in outcomes if o.status == "pending"]
        if released:
            # Back to pending. Never attempted: the claim is undone, attempts
            # included; attempted: the attempt counts and its error is kept.
            conn.execute(
                update(sr)
                .where(sr.c.id == bindparam("row_id"), *self._held())
                .values(
                    status="pending",
                    claimed_by=None,
                    attempts=sr.c.attempts - bindparam("undo"),
                    error=bindparam("error"),
                    updated_at=now,
                ),
                [
                    {"row_id": o.row_id, "undo": 0 if o.error else 1, "error": o.error}
                    for o in released
                ],
            )

    def _held(self) -> tuple[Any, ...]:
        """Conditions for a row this worker holds in ``sending``."""
        return (sr.c.status == "sending", sr.c.claimed_by == self.worker)

    def heartbeat(self, send_id: int, *, force: bool = False) -> None:
        """Refresh this worker's claims so that no other run takes them for
        a crashed one's; cheap to call often (it acts every HEARTBEAT)."""
        from sqlalchemy import update

        now = utcnow()
        if not force and now - self._last_heartbeat < HEARTBEAT:
            return
        self._last_heartbeat = now
        with db.writing(self.engine) as conn:
            conn.execute(
                update(sr).where(sr.c.send_id == send_id, *self._held()).values(updated_at=now)
            )

    # -- reading --------------------------------------------------------------

    def totals(self, send_id: int) -> Totals:
        with self.engine.connect() as conn:
            return _totals(conn, send_id)

    def first_sent_since(self, send_id: int, since: dt.datetime) -> dt.datetime | None:
        """When the first of this send's messages sent since ``since`` went out."""
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            first = conn.execute(
                select(func.min(sr.c.sent_at)).where(
                    sr.c.send_id == send_id, sr.c.status == "sent", sr.c.sent_at >= since
                )
            ).scalar_one()
        return as_utc(first)

    def status(self, send_id: int, *, examples: int = 3, reasons: int = 10) -> SendStatus:
        """Totals, failures grouped by reason, rates and who is sending."""
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


def _claimed_by_is(worker: Any) -> Any:
    from sqlalchemy import or_

    return or_(sr.c.claimed_by == worker, sr.c.claimed_by.is_(None))


def _totals(conn: Connection, send_id: int) -> Totals:
    from sqlalchemy import func, select

    counts = {
        str(status): int(count)
        for status, count in conn.execute(
            select(sr.c.status, func.count()).where(sr.c.send_id == send_id).group_by(sr.c.status)
        )
    }
    return Totals(**{state: counts.get(state, 0) for state in ROW_STATES})


def _stored_id(message_id: str | None) -> str:
    """A provider message id as send_recipients.message_id keeps it."""
    return (message_id or "")[:MESSAGE_ID_LENGTH]


def sends_for_messages(conn: Connection, message_ids: Sequence[str]) -> dict[str, SentMessage]:
    """The send and issue of each provider message id found in the ledger,
    keyed by the ids as given."""
    wanted = {message_id: _stored_id(message_id) for message_id in message_ids if message_id}
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


@dataclass(frozen=True)
class SentMessage:
    """Which send (and issue) a provider message id belongs to."""

    send_id: int
    issue_slug: str


def sent_issue_times(engine: Engine) -> dict[str, dt.datetime]:
    """When each issue was published: the slug of every issue with a send,
    mapped to the moment its send was created."""
    from sqlalchemy import select

    with engine.connect() as conn:
        rows = conn.execute(select(sends.c.issue_slug, sends.c.created_at)).all()
    return {row.issue_slug: as_utc(row.created_at) or utcnow() for row in rows}
