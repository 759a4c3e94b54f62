"""The sending budget that every sender of one account shares: slots on one
timeline, booked in small chunks (the ``send_budget`` table).

    send_budget row per account:  next_slot  where the first free slot begins
                                             (seconds since the epoch, on the
                                             database's clock)
    SendSlots(engine).book(account, count, spacing, ...) -> Booking | None

      start     = max(now + lead, next_slot)
      next_slot = start + count × spacing          one UPDATE ... RETURNING,
                                                   the row locked meanwhile

A booking is ``count`` slots ``spacing`` seconds apart from ``start``: the
calls its sender may make, one per slot. Bookings never overlap, whoever
makes them, so if every sender starts each call no earlier than its slot
and not much later (:mod:`pipeline.pacing` says how much), the calls of
all of them together stay within the rate that ``spacing`` stands for in
every window, however many senders there are, on however many machines,
with no share handed to anyone: a sender that sends faster books more
often. A sender that dies loses only the slots it had booked, a fraction of
a second. ``lead`` keeps a new booking that far ahead of now (time for the
message's hand stamp); ``ahead`` refuses one that would begin more than
that beyond now (None: come back later).

The clock is the database's own (PostgreSQL's ``clock_timestamp()``), so
the machines' clocks need not agree; each sender maps a booking onto its
own monotonic clock with the round trip as the margin, never early (see
:class:`Booking`). SQLite has one host, whose clock is read inside the
write transaction (``BEGIN IMMEDIATE``), which takes the bookings in turn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from subscribers import db
from subscribers.schema import send_budget

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

AHEAD = 1.0
"""Seconds beyond now past which no booking begins: a sender that sends
faster than it is let must wait, not book the future away."""

_BOOK_POSTGRES = """
UPDATE send_budget SET
  next_slot = GREATEST(next_slot,
                       CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision) + :lead)
              + :span,
  rate = :rate,
  updated_at = clock_timestamp()
WHERE account = :account
  AND next_slot <= CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision) + :ahead
RETURNING next_slot - :span,
          CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision)
"""
_BOOK_SQLITE = """
UPDATE send_budget SET
  next_slot = max(next_slot, :now + :lead) + :span,
  rate = :rate,
  updated_at = :updated
WHERE account = :account AND next_slot <= :now + :ahead
RETURNING next_slot - :span, :now
"""


@dataclass(frozen=True)
class Booking:
    """``count`` slots ``spacing`` seconds apart, the first at ``offset``
    seconds after the database's clock read ``offset``'s "now", which fell
    between ``sent`` and ``received`` on the caller's monotonic clock.

    So slot ``i`` begins, on that clock, no earlier than ``received +
    offset + i × spacing`` (:meth:`earliest`) and no later than ``sent +
    offset + i × spacing``: a call started ``tolerance`` seconds after the
    second is at most that late for its slot (:meth:`latest`).
    """

    count: int
    spacing: float
    offset: float
    sent: float
    received: float
    start: float = 0.0
    """The first slot, in seconds since the epoch on the database's clock."""

    def earliest(self, i: int) -> float:
        return self.received + self.offset + i * self.spacing

    def latest(self, i: int, tolerance: float) -> float:
        return self.sent + self.offset + i * self.spacing + tolerance


class SendSlots:
    """Books sending slots for one account, for one process (on PostgreSQL
    over a connection of its own)."""

    def __init__(self, engine: Engine, account: str) -> None:
        self.engine = engine
        self.account = account
        self._postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._statement: Any = None
        self._exists = False
        """The account's row is known to be there."""
        self._lock = threading.Lock()

    def book(
        self, count: int, spacing: float, *, rate: float, lead: float = 0.0, ahead: float = AHEAD
    ) -> Booking | None:
        """Book ``count`` slots ``spacing`` apart, the first at least ``lead``
        seconds from now; None when the free slots begin more than ``ahead``
        seconds from now (others have booked that far). Database errors are
        raised as they come (the caller decides how long to try again)."""
        from sqlalchemy import text

        params = {
            "account": self.account,
            "span": count * spacing,
            "lead": lead,
            "ahead": ahead,
            "rate": rate,
        }
        with self._lock:
            if self._statement is None:
                self._statement = text(_BOOK_POSTGRES if self._postgres else _BOOK_SQLITE)
            row, sent, received = self._update(params)
            if row is None and not self._exists:
                self._create()  # the account's first booking (or another sender's)
                self._exists = True
                row, sent, received = self._update(params)
            if row is None:
                return None  # the row is there: booked too far ahead
            self._exists = True
            start, now = float(row[0]), float(row[1])
            return Booking(count, spacing, start - now, sent, received, start)

    def _update(self, params: dict[str, Any]) -> tuple[Any, float, float]:
        """The booking statement; its row (None: no row, or refused) and the
        monotonic moments around the database's reading of its clock."""
        if self._postgres:
            conn = self._connection()
            sent = time.monotonic()
            try:
                row = conn.execute(self._statement, params).first()
            except Exception:
                self.close()
                raise
            return row, sent, time.monotonic()
        with db.writing(self.engine) as conn:
            sent = time.monotonic()
            params["now"] = time.time()
            received = time.monotonic()
            params["updated"] = dt.datetime.now(dt.UTC)
            row = conn.execute(self._statement, params).first()
        return row, sent, received

    def _create(self) -> None:
        """Make the account's row if it is missing."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = postgresql.insert if self._postgres else sqlite.insert
        statement = (
            insert(send_budget)
            .values(
                account=self.account, next_slot=0.0, rate=0.0, updated_at=dt.datetime.now(dt.UTC)
            )
            .on_conflict_do_nothing(index_elements=["account"])
        )
        with db.writing(self.engine) as conn:
            conn.execute(statement)

    def _connection(self) -> Connection:
        """PostgreSQL: a connection of this booker's own, in autocommit, so
        that a booking is one round trip."""
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection is closed anyway
                conn.close()


__all__ = ["AHEAD", "Booking", "SendSlots"]
