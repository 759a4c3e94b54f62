"""The send ledger: one row per send, one per recipient, and where each stands.

    pending ──claim──▶ sending ──hand──▶ sending, handed ──▶ sent    (provider's id)
       ▲                  │                    │         ──▶ failed  (retried next run)
       └──── release ─────┴────── release ─────┘         ──▶ skipped (left the list)

:meth:`Ledger.start` creates a send and snapshots its recipients (the active
subscribers at that moment) in the same transaction, with one
``INSERT ... SELECT``. Senders then :meth:`~Ledger.claim` small batches:
on PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``, so several
processes share one send without ever claiming the same row; on SQLite
inside a ``BEGIN IMMEDIATE`` transaction, which makes claims one at a time.
A recipient who unsubscribed, bounced, complained or was erased since the
snapshot is skipped at claim time.

Each claim is stamped with its worker (``host:pid:nonce``) and is a lease:
the worker refreshes ``updated_at`` on every row it holds (its heartbeat,
:meth:`~Ledger.write`), and a worker silent for longer than the lease
(:data:`LEASE` by default), or gone from this host (no such process, or a
zombie), is taken for dead. Before each message goes to the transport its
row is stamped ``handed_at``, committed first (:meth:`~Ledger.write`, in
group commits). So of a dead worker's rows, :meth:`~Ledger.take_back`
simply puts back to pending those it never handed; only the handed rows
without a result are *ambiguous*, the message may or may not have gone.
Those are settled from the transport's own records where it keeps them
(the ``settle`` callable: the outbox's files, the SMTP log), and the rest
decided: resend (a duplicate is better than a miss) or skip.

Every method is one unit of work, tried again while the database fails in
a way that may pass (``retry_seconds``, see :func:`subscribers.db.retrying`);
then :class:`~subscribers.errors.DatabaseUnavailable`.

All the SQL for ``sends`` and ``send_recipients`` is here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from subscribers import db
from subscribers.errors import StoreError
from subscribers.models import as_utc, utcnow
from subscribers.schema import send_recipients, sends, subscriber_events, subscribers

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Row

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE = dt.timedelta(minutes=2)
"""A claim not refreshed for this long belongs to a worker presumed dead."""
HEARTBEAT = dt.timedelta(seconds=20)
"""How often a live worker refreshes its claims with the default lease (a
sixth of the lease: a late heartbeat or two never loses it)."""
AMBIGUOUS_RESENT = "may have been sent before an interrupted run (sent again)"
AMBIGUOUS_SKIPPED = "may have been sent before an interrupted run (skipped)"

SendState = Literal["sending", "paused", "interrupted", "stopped", "done"]
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
    issue_digest: str | None = None
    """sha256 of the issue file's bytes when the send began."""


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
    """What :meth:`Ledger.resume` (before a run) or :meth:`Ledger.take_back`
    (during one) found of a dead worker's rows, and decided."""

    ambiguous: int = 0
    """Rows handed to the transport by a worker that died before their
    result was recorded, and that the transport's records could not settle."""
    ambiguous_action: str = "resend"
    retried: int = 0
    """Failed rows put back to pending."""
    released: int = 0
    """Rows a dead worker claimed but never handed: simply pending again."""
    settled: int = 0
    """Handed rows that the transport's own records show as sent: recorded sent."""

    def __add__(self, other: Resumed) -> Resumed:
        return Resumed(
            ambiguous=self.ambiguous + other.ambiguous,
            ambiguous_action=other.ambiguous_action,
            retried=self.retried + other.retried,
            released=self.released + other.released,
            settled=self.settled + other.settled,
        )

    def __bool__(self) -> bool:
        return bool(self.ambiguous or self.retried or self.released or self.settled)


Settle = Callable[[Sequence["Claimed"]], dict[int, "str | None"]]
"""Given handed rows without a result, what the transport's own records
show of them: row id → the provider's message id for a message it accepted,
or None for one its records prove it never accepted. Rows left out stay
undecided."""


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
    """True when ``worker`` ran on this host and its process is no more (or
    is a zombie that nobody has reaped). Workers on other hosts are judged
    by their lease instead."""
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
    return _is_zombie(int(pid_text))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses.
    return stat.rpartition(b")")[2].split()[:1] == [b"Z"]


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
        issue_digest=row.issue_digest,
    )


class Ledger:
    """The sends and their recipients in one database, for one worker."""

    def __init__(
        self,
        engine: Engine,
        worker: str | None = None,
        *,
        lease: dt.timedelta = LEASE,
        retry_seconds: float = 0.0,
    ) -> None:
        self.engine = engine
        self.worker = worker or new_worker_id()
        self.lease = lease
        self.heartbeat_every = lease / 6
        self.retry_seconds = retry_seconds
        self.give_up = threading.Event()
        """Set: no more retries (the run is stopping on a database failure)."""
        self.health: Callable[[bool], None] | None = None
        """Told False when a unit of work fails and will be tried again,
        True when a write succeeds (see :class:`pipeline.recorder.Recorder`)."""
        self._last_heartbeat = utcnow()

    def _retrying(self, work: Callable[[], T], *, writing: bool = True) -> T:
        health = self.health
        result = db.retrying(
            self.engine,
            work,
            seconds=self.retry_seconds,
            give_up=self.give_up,
            writing=writing,
            on_failure=None if health is None else lambda _exc: health(False),
        )
        if writing and health is not None:
            health(True)
        return result

    # -- sends ----------------------------------------------------------------

    def find(self, slug: str) -> SendRecord | None:
        """The send of the issue with this slug, if it was ever started."""
        from sqlalchemy import select

        def read() -> Row[Any] | None:
            with self.engine.connect() as conn:
                return conn.execute(select(sends).where(sends.c.issue_slug == slug)).first()

        row = self._retrying(read, writing=False)
        return _record(row) if row else None

    def get(self, send_id: int) -> SendRecord:
        from sqlalchemy import select

        def read() -> Row[Any] | None:
            with self.engine.connect() as conn:
                return conn.execute(select(sends).where(sends.c.id == send_id)).first()

        row = self._retrying(read, writing=False)
        if row is None:
            raise StoreError(f"send {send_id}: not found")
        return _record(row)

    def sends(self) -> list[SendRecord]:
        """Every send, newest first."""
        from sqlalchemy import select

        def read() -> list[SendRecord]:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(sends).order_by(sends.c.created_at.desc(), sends.c.id.desc())
                )
                return [_record(row) for row in rows]

        return self._retrying(read, writing=False)

    def active_count(self) -> int:
        """Subscribers a send started now would go to."""
        from sqlalchemy import func, select

        def read() -> int:
            with self.engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count())
                        .select_from(subscribers)
                        .where(subscribers.c.status == "active")
                    ).scalar_one()
                )

        return self._retrying(read, writing=False)

    def start(
        self,
        slug: str,
        path: str,
        subject: str,
        transport: str,
        *,
        digest: str | None = None,
        created_at: dt.datetime | None = None,
    ) -> tuple[SendRecord, bool]:
        """The issue's send, created with its recipient snapshot if it has none.

        Returns ``(send, created)``. Two processes starting the same issue at
        once get the same send: the slug is unique, and the loser of the race
        reads the winner's row. ``digest`` identifies the file's content, so
        a later run can tell the same issue moved from another one that
        reuses its slug.
        """
        from sqlalchemy.exc import IntegrityError

        existing = self.find(slug)
        if existing is not None:
            return existing, False
        try:
            send_id = self._retrying(
                lambda: self._start(slug, path, subject, transport, digest, created_at)
            )
        except IntegrityError:
            existing = self.find(slug)
            if existing is None:
                raise
            return existing, False
        return self.get(int(send_id)), True

    def _start(
        self,
        slug: str,
        path: str,
        subject: str,
        transport: str,
        digest: str | None,
        created_at: dt.datetime | None,
    ) -> int:
        from sqlalchemy import insert, literal, select

        now = created_at or utcnow()
        with db.writing(self.engine) as conn:
            send_id = conn.execute(
                insert(sends)
                .values(
                    issue_slug=slug,
                    issue_path=path[:1000],
                    issue_digest=digest,
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
        return int(send_id)

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

        def write() -> None:
            with db.writing(self.engine) as conn:
                conn.execute(update(sends).where(sends.c.id == send_id).values(**values))

        self._retrying(write)

    # -- taking back a dead worker's rows -------------------------------------

    def live_workers(self, send_id: int) -> tuple[str, ...]:
        """Other workers holding claims on this send that look alive."""
        held = self._retrying(lambda: self._holders(send_id), writing=False)
        cutoff = utcnow() - self.lease
        return tuple(
            sorted(
                worker
                for worker, last in held.items()
                if worker != self.worker
                and worker is not None
                and not _is_stale(last, worker, self.worker, cutoff)
            )
        )

    def _holders(self, send_id: int) -> dict[str | None, dt.datetime | None]:
        """Each worker holding rows of the send in ``sending``, with its
        latest refresh (its heartbeat refreshes all its rows at once)."""
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sr.c.claimed_by, func.max(sr.c.updated_at))
                .where(sr.c.send_id == send_id, sr.c.status == "sending")
                .group_by(sr.c.claimed_by)
            ).all()
        return {row[0]: as_utc(row[1]) for row in rows}

    def take_back(
        self,
        send_id: int,
        on_ambiguous: Ambiguous = "resend",
        settle: Settle | None = None,
        *,
        own: bool = False,
    ) -> Resumed:
        """Take back the rows of workers presumed dead (lease run out, or
        gone from this host), and with ``own`` this worker's own rows left in
        ``sending`` (a claim whose answer was lost to a dropped connection:
        call it only when every row this worker knows of is decided).

        Rows never handed to the transport go back to pending. Handed rows
        without a result become this worker's; those ``settle`` finds in the
        transport's records show as sent are recorded sent, those they show
        as never accepted go back to pending, and the rest are decided by
        ``on_ambiguous``: back to pending (resend) or skipped."""
        holders = self._retrying(lambda: self._holders(send_id), writing=False)
        cutoff = utcnow() - self.lease
        taken: list[tuple[str | None, dt.datetime | None]] = []
        for worker, last in holders.items():
            if worker == self.worker:
                if own:
                    taken.append((worker, None))
            elif _worker_is_gone(worker, self.worker):
                taken.append((worker, None))
            elif (last or cutoff) <= cutoff:
                # Only rows still unrefreshed: a heartbeat committed first wins.
                taken.append((worker, cutoff))
        released = 0
        handed: list[tuple[Claimed, dt.datetime | None]] = []
        for worker, before in taken:
            count, rows = self._retrying(partial(self._take, send_id, worker, before))
            released += count
            handed.extend(rows)
            if count or rows:
                log.warning(
                    "took back %d recipients from %s, which stopped (%d never handed over)",
                    count + len(rows),
                    worker or "no worker",
                    count,
                )
        if not handed:
            return Resumed(released=released, ambiguous_action=on_ambiguous)
        found: dict[int, str | None] = {}
        if settle is not None:
            try:
                found = settle([row for row, _ in handed])
            except Exception as exc:  # the records are a help, never a reason to stop
                log.warning("could not read the transport's records of what it sent: %s", exc)
        outcomes = []
        for row, handed_at in handed:
            if row.row_id in found:
                message_id = found[row.row_id]
                if message_id is None:  # never accepted: no attempt, simply pending
                    outcomes.append(Outcome(row.row_id, "pending"))
                else:
                    outcomes.append(
                        Outcome(row.row_id, "sent", message_id=message_id,
                                at=handed_at or utcnow())
                    )
            elif on_ambiguous == "resend":
                outcomes.append(Outcome(row.row_id, "pending", error=AMBIGUOUS_RESENT))
            else:
                outcomes.append(Outcome(row.row_id, "skipped", error=AMBIGUOUS_SKIPPED))
        self.record(outcomes)
        settled = sum(1 for o in outcomes if o.status == "sent")
        unsent = sum(1 for o in outcomes if o.status == "pending" and not o.error)
        return Resumed(
            ambiguous=len(outcomes) - settled - unsent,
            ambiguous_action=on_ambiguous,
            released=released + unsent,
            settled=settled,
        )

    def _take(
        self, send_id: int, worker: str | None, before: dt.datetime | None
    ) -> tuple[int, list[tuple[Claimed, dt.datetime | None]]]:
        from sqlalchemy import update

        now = utcnow()
        where = [sr.c.send_id == send_id, sr.c.status == "sending", _claimed_by_eq(worker)]
        if before is not None:
            where.append(sr.c.updated_at <= before)
        with db.writing(self.engine) as conn:
            released = conn.execute(
                update(sr)
                .where(*where, sr.c.handed_at.is_(None))
                .values(
                    status="pending",
                    claimed_by=None,
                    attempts=sr.c.attempts - 1,
                    updated_at=now,
                )
            ).rowcount
            rows = conn.execute(
                update(sr)
                .where(*where, sr.c.handed_at.is_not(None))
                .values(claimed_by=self.worker, updated_at=now)
                .returning(
                    sr.c.id, sr.c.subscriber_id, sr.c.email, sr.c.name, sr.c.attempts,
                    sr.c.handed_at,
                )
            ).all()
        handed = [
            (
                Claimed(
                    row_id=int(row.id),
                    subscriber_id=int(row.subscriber_id or 0),
                    email=row.email or "",
                    name=row.name or "",
                    attempts=int(row.attempts),
                ),
                as_utc(row.handed_at),
            )
            for row in sorted(rows, key=lambda r: int(r.id))
        ]
        return int(released or 0), handed

    def resume(
        self, send_id: int, on_ambiguous: Ambiguous = "resend", settle: Settle | None = None
    ) -> Resumed:
        """Make a send ready for another run: take back what dead workers
        left in ``sending`` (:meth:`take_back`) and put failed rows back to
        pending so they are tried again."""
        from sqlalchemy import update

        resumed = self.take_back(send_id, on_ambiguous, settle)

        def retry_failed() -> int:
            with db.writing(self.engine) as conn:
                return int(
                    conn.execute(
                        update(sr)
                        .where(sr.c.send_id == send_id, sr.c.status == "failed")
                        .values(
                            status="pending", claimed_by=None, handed_at=None, updated_at=utcnow()
                        )
                    ).rowcount
                    or 0
                )

        return resumed + Resumed(retried=self._retrying(retry_failed),
                                 ambiguous_action=on_ambiguous)

    def apply_recovered(self, send_id: int, worker: str, outcomes: Sequence[Outcome]) -> int:
        """Write results that ``worker`` could not record before it stopped
        (kept in a recovery file): a sent message always, other results only
        where the row is still that worker's. Returns the rows changed."""
        from sqlalchemy import bindparam, update

        sent = [o for o in outcomes if o.status == "sent"]
        others = [o for o in outcomes if o.status != "sent"]

        def write() -> int:
            now = utcnow()
            changed = 0
            with db.writing(self.engine) as conn:
                if sent:
                    changed += int(
                        conn.execute(
                            update(sr)
                            .where(
                                sr.c.id == bindparam("row_id"),
                                sr.c.send_id == send_id,
                                sr.c.status != "sent",
                            )
                            .values(
                                status="sent",
                                message_id=bindparam("message_id"),
                                sent_at=bindparam("at"),
                                updated_at=now,
                                error=None,
                            ),
                            [
                                {"row_id": o.row_id, "message_id": _stored_id(o.message_id),
                                 "at": o.at}
                                for o in sent
                            ],
                        ).rowcount
                        or 0
                    )
                if others:
                    held = Ledger(self.engine, worker)
                    held._record(conn, others, now)
            return changed + len(others)

        return self._retrying(write)

    # -- the run --------------------------------------------------------------

    def claim(
        self, send_id: int, limit: int, done: Sequence[Outcome] = ()
    ) -> tuple[list[Claimed], list[Outcome]]:
        """Record ``done``, then claim up to ``limit`` pending rows, in one
        transaction. Returns the rows to send and those skipped because the
        subscriber has left the list since the snapshot."""
        return self._retrying(lambda: self._claim(send_id, limit, done))

    def _claim(
        self, send_id: int, limit: int, done: Sequence[Outcome]
    ) -> tuple[list[Claimed], list[Outcome]]:
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
                    handed_at=None,
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
            self.write(outcomes)

    def write(
        self,
        outcomes: Sequence[Outcome] = (),
        *,
        hand: Sequence[int] = (),
        heartbeat: int | None = None,
    ) -> set[int]:
        """One group commit, in this order: the results in ``outcomes``; the
        rows in ``hand`` stamped as handed to the transport, of those still
        this worker's (the ids returned: only those may be sent); and with
        ``heartbeat`` (a send id) every claim this worker holds on that send
        refreshed. A single unit of work, tried again as a whole."""
        if not (outcomes or hand or heartbeat is not None):
            return set()
        return self._retrying(lambda: self._write(outcomes, hand, heartbeat))

    def _write(
        self, outcomes: Sequence[Outcome], hand: Sequence[int], heartbeat: int | None
    ) -> set[int]:
        from sqlalchemy import update

        now = utcnow()
        handed: set[int] = set()
        with db.writing(self.engine) as conn:
            if outcomes:
                self._record(conn, outcomes, now)
            if hand:
                rows = conn.execute(
                    update(sr)
                    .where(sr.c.id.in_(list(hand)), *self._held())
                    .values(handed_at=now, updated_at=now)
                    .returning(sr.c.id)
                ).all()
                handed = {int(row.id) for row in rows}
            if heartbeat is not None:
                conn.execute(
                    update(sr)
                    .where(sr.c.send_id == heartbeat, *self._held())
                    .values(updated_at=now)
                )
        if heartbeat is not None:
            self._last_heartbeat = now
        return handed

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
                    handed_at=None,
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
        a crashed one's; cheap to call often (it acts every
        :attr:`heartbeat_every`)."""
        if not force and utcnow() - self._last_heartbeat < self.heartbeat_every:
            return
        self.write(heartbeat=send_id)

    # -- reading --------------------------------------------------------------

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


def _claimed_by_eq(worker: str | None) -> Any:
    """``claimed_by`` is ``worker`` (or, for None, is NULL)."""
    return sr.c.claimed_by.is_(None) if worker is None else sr.c.claimed_by == worker


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
