"""Keeping a send within the provider's limits: the rate and the daily quota.

:class:`Pacer` hands out permission to make one API call at a time, shared
by every sending thread: no window of one second ever holds more than
``rate`` calls. Calls are spaced evenly (``1/rate`` apart, never in bursts)
and a sliding window over the last ``rate`` calls guards the rule itself,
measured over slightly more than a second so that the jitter between
leaving the pacer and reaching the provider cannot push a window over.
When the provider throttles anyway (another process shares the account,
say), :meth:`Pacer.throttled` takes a small share off the pace, and each call
that gets through (:meth:`Pacer.succeeded`) climbs it back, the whole rate in
a couple of seconds of calls: additive increase, multiplicative decrease, as
TCP and botocore's adaptive retries do.
Throttles in a row, with no call getting through between them, cut deeper
each time, so an account whose real
limit is far below its quota comes down to it within a few calls, while
scattered throttles cost little: one call in a hundred next to nothing, one
in ten about a third of the rate.

Shared by several senders (``shared_rate``: the account's rate), the pacer
lets a call go only in a *slot* booked from the database for this process
(:mod:`pipeline.slots` books them, :mod:`subscribers.ledger.slots` keeps the
one timeline of each account). Every slot is ``SHARED_WINDOW / shared_rate``
long and nobody else's; a call starts no earlier than its slot and at most
TOLERANCE later, or the slot is let go and the call takes the next. So in
any one-second window all the senders together start at most the slots of
1 s + TOLERANCE, which SHARED_WINDOW leaves WINDOW's margin for the arrival
jitter: never over the rate. The pacer's own spacing (``rate``) still
applies when this process was given less than the account's rate
(``--rate``) or has slowed down after a throttle.

:class:`Budget` counts down what the daily quota (Max24HourSend minus
SentLast24Hours) still allows.

:func:`backoff` is the wait before retry ``n``: exponential, capped, with
jitter so that threads retrying together do not stay in step.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WINDOW = 1.02
"""Seconds over which at most ``rate`` calls may start (1 s plus a margin)."""
DECREASE = 0.97
"""What one throttle leaves of the pace."""
RECOVERY = 2.0
"""Seconds the pace takes to climb back from nothing to the full rate."""
FLOOR = 0.05
"""The slowest pace throttling brings, as a share of the rate."""
READY_LEAD = 0.02
"""Seconds before its turn that a call's ``ready`` step runs (see :meth:`Pacer.acquire`)."""
TOLERANCE = 0.01
"""Seconds after its slot begins that a call may still start (shared
budget)."""
SHARED_WINDOW = WINDOW + TOLERANCE
"""Seconds over which at most ``rate`` slots are booked (shared budget): a
call may start TOLERANCE late for its slot, and the jitter on its way to the
provider keeps WINDOW's whole margin, as the pacer's own calls have it."""


@dataclass(frozen=True)
class Slot:
    """A moment booked in the shared budget, on the pacer's clock: a call may
    start from ``at`` until ``latest``."""

    at: float
    latest: float


class Pacer:
    """At most ``rate`` calls in any one-second window, shared by threads.

    ``rate`` None means no limit (the outbox, an SMTP relay without one).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        shared_rate: float | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self.shared_rate = shared_rate if rate is not None else None
        """The account's rate, when its calls are shared with other senders
        through slots (:meth:`add_slots`); None: this pacer alone decides."""
        self.slots_lost = 0
        """Slots let go because no call started in them in time: taken by a
        thread that was late for it, or never taken."""
        self.slots_late = 0
        """Of :attr:`slots_lost`, those taken by a thread late for them."""
        self.slots_used = 0
        """Slots a call started in."""
        self._slots: deque[Slot] = deque()
        self._slot_waiters = 0
        self._slots_added = threading.Condition(self._lock)
        self._slots_wanted = threading.Condition(self._lock)
        self._slots_closed = False
        self._next = 0.0
        size = max(1, math.floor(rate)) if rate else 1
        self._reserved: deque[float] = deque(maxlen=size)
        self._released: deque[float] = deque(maxlen=size)
        self._pace = rate or 0.0
        self._streak = 0

    @property
    def pace(self) -> float | None:
        """The calls per second currently allowed (below ``rate`` after throttling)."""
        return None if self.rate is None else self._pace

    def reserve(self) -> float:
        """Reserve the next call's moment (on the pacer's clock) and return it."""
        if self.rate is None:
            return self._clock()
        with self._lock:
            now = self._clock()
            moment = max(now, self._next)
            reserved = self._reserved
            if len(reserved) == reserved.maxlen:
                moment = max(moment, reserved[0] + self.window)
            reserved.append(moment)
            self._next = moment + self.window / self._pace
            return moment

    def acquire(
        self,
        stop: threading.Event,
        ready: Callable[[], bool] | None = None,
        *,
        lead: float = READY_LEAD,
    ) -> bool:
        """Wait for this thread's turn; False if ``stop`` was set meanwhile.

        The window is checked again against the moments calls were really
        let go, so a thread that wakes late cannot crowd the one after it.
        ``ready`` is called once, ``lead`` seconds before the turn (at once
        without a rate): what must be done just before the call (the send
        loop commits that the message is handed over); False from it gives
        the turn up. With a shared budget the turn is a slot, and ``ready``
        runs before the slot is taken (see :meth:`_acquire_slot`).
        """
        if self.rate is None:
            if stop.is_set():
                return False
            return ready() if ready is not None else True
        if self.shared_rate is not None:
            return self._acquire_slot(stop, ready, lead)
        moment = self.reserve()
        while True:
            delay = moment - self._clock()
            if ready is not None and delay <= lead:
                if not ready():
                    return False
                ready = None
                continue
            if delay > 0:
                if stop.wait(delay):
                    return False
                continue
            with self._lock:
                now = self._clock()
                released = self._released
                if len(released) == released.maxlen and now - released[0] < self.window:
                    moment = released[0] + self.window
                    continue
                released.append(now)
            return not stop.is_set()

    # -- shared by several senders: slots ------------------------------------

    def _acquire_slot(
        self, stop: threading.Event, ready: Callable[[], bool] | None, lead: float
    ) -> bool:
        """:meth:`acquire` with a shared budget: this process's own turn
        first where its pace is below the account's, then ``ready``, then a
        slot. ``ready`` (a commit: milliseconds, more under load) runs before
        the slot is taken, so that it never makes the call late for it;
        the thread then waits for its slot alone."""
        assert self.rate is not None and self.shared_rate is not None
        del lead  # the slot comes after ``ready``, whenever it is
        while True:
            own = self._pace < self.shared_rate * 0.999
            if own and stop.wait(max(0.0, self.reserve() - self._clock())):
                return False
            if ready is not None:
                if not ready():
                    return False
                ready = None
            slot = self._take_slot(stop)
            if slot is None:
                return False
            delay = slot.at - self._clock()
            if delay > 0 and stop.wait(delay):
                return False
            with self._lock:
                now = self._clock()
                released = self._released
                crowded = (
                    own and len(released) == released.maxlen and now - released[0] < self.window
                )
                if now > slot.latest or crowded:
                    self.slots_lost += 1
                    self.slots_late += 1
                    continue
                released.append(now)
                self.slots_used += 1
            return not stop.is_set()

    def _take_slot(self, stop: threading.Event) -> Slot | None:
        """The earliest booked slot that has not passed, once there is one;
        None when ``stop`` is set (or no more slots will come)."""
        with self._lock:
            self._slot_waiters += 1
            try:
                while True:
                    self._drop_passed(self._clock())
                    if self._slots:
                        return self._slots.popleft()
                    if stop.is_set() or self._slots_closed:
                        return None
                    self._slots_wanted.notify()
                    self._slots_added.wait(0.05)
            finally:
                self._slot_waiters -= 1

    def _drop_passed(self, now: float) -> None:
        while self._slots and self._slots[0].latest < now:
            self._slots.popleft()
            self.slots_lost += 1

    def slot_demand(self, timeout: float) -> tuple[int, int, int]:
        """For the feeder that books slots: (threads waiting for a slot,
        slots booked that no thread has taken, slots used so far), once a
        thread waits with none booked for it or ``timeout`` seconds have
        passed."""
        with self._lock:
            if not self._slots_closed and self._slot_waiters <= len(self._slots):
                self._slots_wanted.wait(timeout)
            self._drop_passed(self._clock())
            return self._slot_waiters, len(self._slots), self.slots_used

    def add_slots(self, slots: Sequence[Slot]) -> None:
        """Slots booked for this process, in order of time (one whose booking
        took longer than its tolerance cannot be used: it is lost)."""
        usable = [slot for slot in slots if slot.latest >= slot.at]
        with self._lock:
            self._slots.extend(usable)
            self.slots_lost += len(slots) - len(usable)
            self._slots_added.notify(len(usable))

    def close_slots(self) -> None:
        """No more slots will come: whoever waits for one gives up its turn."""
        with self._lock:
            self._slots_closed = True
            self._slots_added.notify_all()
            self._slots_wanted.notify_all()

    def throttled(self) -> None:
        """The provider said "too fast": take a share off the pace, a larger
        one for each throttle since a call last got through.

        The next call waits for the new, longer spacing; nobody is paused
        beyond that, so one throttle costs a fraction of a call, not a stall.
        """
        if self.rate is None:
            return
        with self._lock:
            self._streak += 1
            self._pace = max(self.rate * FLOOR, self._pace * DECREASE**self._streak)
            self._next = max(self._next, self._clock() + self.window / self._pace)

    def succeeded(self) -> None:
        """A call got through: climb back towards the rate, by as much as
        makes the whole rate in RECOVERY seconds of calls at this pace, and
        start a new streak for the next throttle."""
        if self.rate is None:
            return
        with self._lock:
            self._streak = 0
            if self._pace < self.rate:
                self._pace = min(self.rate, self._pace + self.rate / (RECOVERY * self._pace))


class Budget:
    """What the daily quota still allows; None means no quota."""

    def __init__(self, remaining: float | None) -> None:
        self._remaining = None if remaining is None else max(0, math.floor(remaining))
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int | None:
        return self._remaining

    def take(self) -> bool:
        if self._remaining is None:
            return True
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            return True

    def give_back(self) -> None:
        if self._remaining is not None:
            with self._lock:
                self._remaining += 1


def backoff(attempt: int, *, base: float = 0.5, cap: float = 20.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential,
    capped, with "equal jitter" (half fixed, half random)."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not secrets
