"""Keeping a send within the provider's limits: the rate and the daily quota.

:class:`Pacer` hands out permission to make one API call at a time, shared
by every sending thread: no window of one second ever holds more than
``rate`` calls. Calls are spaced evenly (``1/rate`` apart, never in bursts)
and a sliding window over the last ``rate`` calls guards the rule itself,
measured over slightly more than a second so that the jitter between
leaving the pacer and reaching the provider cannot push a window over.
When the provider throttles anyway (another process shares the account,
say), :meth:`Pacer.throttled` halves the pace and pauses every thread; the
pace then climbs back to the full rate over half a minute.

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
from collections.abc import Callable

WINDOW = 1.02
"""Seconds over which at most ``rate`` calls may start (1 s plus a margin)."""
RECOVERY = 30.0
"""Seconds to climb back from a throttled pace to the full rate."""


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
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        size = max(1, math.floor(rate)) if rate else 1
        self._reserved: deque[float] = deque(maxlen=size)
        self._released: deque[float] = deque(maxlen=size)
        self._pace = rate or 0.0
        self._slowed_at = 0.0
        self._slowed_to = self._pace

    @property
    def pace(self) -> float | None:
        """The calls per second currently allowed (below ``rate`` after throttling)."""
        if self.rate is None:
            return None
        with self._lock:
            return self._current(self._clock())

    def _current(self, now: float) -> float:
        assert self.rate is not None
        if self._slowed_to >= self.rate:
            return self.rate
        climbed = self._slowed_to + (now - self._slowed_at) * self.rate / RECOVERY
        return min(self.rate, climbed)

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
            self._next = moment + self.window / self._current(moment)
            return moment

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for this thread's turn; False if ``stop`` was set meanwhile.

        The window is checked again against the moments calls were really
        let go, so a thread that wakes late cannot crowd the one after it.
        """
        if self.rate is None:
            return not stop.is_set()
        moment = self.reserve()
        while True:
            delay = moment - self._clock()
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

    def throttled(self, pause: float = 0.25) -> None:
        """The provider said "too fast": halve the pace and pause everyone."""
        if self.rate is None:
            return
        with self._lock:
            now = self._clock()
            self._slowed_to = max(self.rate / 20, self._current(now) / 2)
            self._slowed_at = now
            self._next = max(self._next, now + pause)


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
