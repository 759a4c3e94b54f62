"""Booking this process's sending slots from the shared budget, as fast as
its sending threads use them.

    sending threads ──Pacer.acquire──────> hand stamp, then wait for a slot
    SlotFeed thread ──Pacer.slot_demand()─> threads waiting, slots queued, used
                    ──SendSlots.book(n)───> subscribers.ledger.slots: one UPDATE
                    ──Pacer.add_slots─────> the slots, on this process's clock

Every sender of one account books from one timeline in the database
(:mod:`subscribers.ledger.slots`), so together they never exceed the
account's rate, and none is told its share. Each books what it uses: a slot
for each thread waiting, and as many more as its threads have been using in
AHEAD seconds (GROWTH more, so the pace can climb), at most CHUNK_SECONDS of
the account's rate at a time. A process that sends faster books more; one
that cannot keep up with the whole rate (CPU) books little more than it
uses, which leaves the rest of the timeline to the others; one that stops
books nothing. A slot nobody starts a call in within its tolerance is let
go (:attr:`Pacer.slots_lost`).

Each booking's round trip bounds how far the database's clock is from this
process's: the database read its clock somewhere between the request and
the answer. A slot's start is mapped onto this clock at the late end of
that span (never early) and its tolerance from the early end, so a slow
answer leaves a slot less of its tolerance: one slower than the tolerance,
none. :class:`ClockOffset` keeps the tightest bounds the bookings so far
give, widened by how far two clocks may drift apart since (DRIFT), so that
one slow answer (the feeder thread kept waiting for the GIL, the database
for a core) does not cost its slots; a booking whose bounds do not meet
those (a clock stepped) starts them afresh. NTP slews a clock by less than
128 ms and steps it by more, which no bounds of a round trip survive.

A booking that fails in a way that may pass is tried again, for the
ledger's ``retry_seconds``, while the threads wait (nothing is sent without
a slot); past that, or on any other error, ``on_failure`` is told (the send
loop stops as for any database failure) and the waiting threads let go.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.pacing import SHARED_WINDOW, TOLERANCE, Pacer, Slot
from subscribers.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from subscribers.ledger.slots import Booking, SendSlots

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.01
"""The most slots one booking takes, in seconds of the account's rate:
small, so that a process that cannot keep up with the whole rate for that
long is not late for its last slots."""
AHEAD = 0.02
"""Besides a slot for each thread waiting, the feeder keeps booked as many
as its threads use in this many seconds (at the pace they have been using
them), for the threads about to come: they seldom wait for a booking, and
a process that cannot use the whole rate books little more than it uses,
leaving the rest to the others."""
GROWTH = 1.1
"""How much more than its threads have been using the feeder books: room
for the pace to grow by a tenth every SMOOTHING seconds."""
POLL = 0.005
"""Seconds between the feeder's looks at its threads' demand."""
SMOOTHING = 0.1
"""Seconds over which the pace of use is measured."""
LEAD = 0.002
"""Seconds ahead of now that a booking begins at the earliest, so that its
first slot has not begun by the time the answer is read."""
REFUSED_PAUSE = 0.02
"""Seconds before booking again when the timeline is booked up too far ahead."""
DRIFT = 0.001
"""The most two clocks drift apart, in seconds a second: NTP slews a clock
by at most 500 parts per million, so two by at most twice that."""


class SlotFeed:
    """A thread that books slots for ``pacer`` as its threads wait for them."""

    def __init__(
        self,
        pacer: Pacer,
        slots: SendSlots,
        *,
        retry_seconds: float = 0.0,
        on_failure: Callable[[DatabaseUnavailable], None] | None = None,
    ) -> None:
        if pacer.shared_rate is None:
            raise ValueError("the pacer does not share its rate")
        self.pacer = pacer
        self.slots = slots
        self.rate = pacer.shared_rate
        self.spacing = SHARED_WINDOW / self.rate
        self.chunk = max(1, math.floor(self.rate * CHUNK_SECONDS))
        self.retry_seconds = retry_seconds
        self.on_failure = on_failure
        self.bookings = 0
        self.booked = 0
        self.clock = ClockOffset()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slot-feed", daemon=True)

    def start(self) -> SlotFeed:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop booking; whoever waits for a slot gives up its turn."""
        self._closing.set()
        self.pacer.close_slots()
        if self._thread.is_alive():
            self._thread.join()
        self.slots.close()

    def _run(self) -> None:
        failing_since: float | None = None
        attempt = 0
        pace = Consumption()
        while not self._closing.is_set():
            waiting, queued, used = self.pacer.slot_demand(POLL)
            ahead = pace.update(used, time.monotonic()) * GROWTH * AHEAD
            wanted = waiting + ahead - queued
            if wanted < 1:
                continue
            count = min(self.chunk, math.ceil(wanted))
            try:
                booking = self.slots.book(count, self.spacing, rate=self.rate, lead=LEAD)
            except Exception as exc:
                failing_since = failing_since or time.monotonic()
                attempt += 1
                if not self._may_retry(exc, failing_since):
                    return
                self._closing.wait(min(2.0, 0.05 * 2 ** (attempt - 1)))
                continue
            failing_since, attempt = None, 0
            if booking is None:
                self._closing.wait(REFUSED_PAUSE)
                continue
            self.pacer.add_slots(slots_of(booking, self.clock.update(booking)))
            self.bookings += 1
            self.booked += booking.count

    def _may_retry(self, exc: Exception, since: float) -> bool:
        """Whether to book again after ``exc``; if not, ``on_failure`` is
        told and the pacer's waiting threads let go."""
        from subscribers.db import failure_cause, is_transient

        if is_transient(exc):
            cause = failure_cause(self.slots.engine, exc)
            if time.monotonic() - since < self.retry_seconds:
                log.warning("could not book sending slots (%s); trying again", cause)
                return True
            failure = DatabaseUnavailable(cause)
        else:
            log.exception("booking sending slots failed")
            failure = DatabaseUnavailable(f"booking sending slots: {type(exc).__name__}: {exc}")
        self.pacer.close_slots()
        if self.on_failure is not None:
            self.on_failure(failure)
        return False


class Consumption:
    """Slots used per second, smoothed over about SMOOTHING seconds."""

    def __init__(self) -> None:
        self.rate = 0.0
        self._at = 0.0
        self._used = 0

    def update(self, used: int, now: float) -> float:
        """The rate, given the slots used so far at ``now``."""
        elapsed = now - self._at
        if self._at == 0.0:
            self._at, self._used = now, used
        elif elapsed >= POLL:
            weight = min(1.0, elapsed / SMOOTHING)
            self.rate += weight * ((used - self._used) / elapsed - self.rate)
            self._at, self._used = now, used
        return self.rate


class ClockOffset:
    """Bounds on this process's monotonic clock less the database's clock,
    from the bookings' round trips."""

    def __init__(self) -> None:
        self.low = -math.inf
        self.high = math.inf
        self._at: float | None = None

    def update(self, booking: Booking) -> tuple[float, float]:
        """The bounds with ``booking``'s: its own, narrowed by those before
        (widened by DRIFT for the time since) when the two agree."""
        database_now = booking.start - booking.offset
        low, high = booking.sent - database_now, booking.received - database_now
        if self._at is not None:
            slack = DRIFT * max(0.0, booking.received - self._at)
            before_low, before_high = self.low - slack, self.high + slack
            if before_low <= high and low <= before_high:
                low, high = max(low, before_low), min(high, before_high)
        self.low, self.high, self._at = low, high, booking.received
        return low, high


def slots_of(booking: Booking, offset: tuple[float, float] | None = None) -> list[Slot]:
    """A booking's slots on this process's clock: each from the latest
    moment its start can be here to the earliest moment plus the
    tolerance; with ``offset`` (this clock less the database's, its bounds:
    :meth:`ClockOffset.update`), from those bounds instead of the booking's
    own round trip."""
    if offset is None:
        return [
            Slot(booking.earliest(i), booking.latest(i, TOLERANCE)) for i in range(booking.count)
        ]
    low, high = offset
    return [
        Slot(
            booking.start + i * booking.spacing + high,
            booking.start + i * booking.spacing + low + TOLERANCE,
        )
        for i in range(booking.count)
    ]


__all__ = ["CHUNK_SECONDS", "DRIFT", "ClockOffset", "SlotFeed", "slots_of"]
