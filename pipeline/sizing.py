"""How much a send keeps going at once: threads, recipients claimed, messages handed.

    rate, workers ──pool_size──>  sending threads (enough to keep the rate
                                  going through calls of ROUND_TRIP seconds)
                  ──claim_size──> recipients claimed at a time: the *window*,
                                  about WINDOW_SECONDS of sending
    window, threads ──most_handed──> the most messages a thread hands at a time
    a thread's timings ──batch_size──> how many it hands next (unpaced sends)

Every figure is small on purpose: what is claimed but not yet handed goes
back to pending when a run stops, and what is handed but not recorded is
undecided after a crash.
"""

from __future__ import annotations

import math

WINDOW_SECONDS = 0.5
"""Seconds of sending claimed at a time, at the send's rate."""
MAX_WORKERS = 64
"""The most sending threads a rate calls for."""
ROUND_TRIP = 0.1
"""Seconds an API call is assumed to take when sizing the thread pool."""
MAX_HANDED = 64
"""The most messages one thread has handed at a time (a transport that answers at once)."""


def pool_size(workers: int, rate: float | None) -> int:
    """Threads enough to keep ``rate`` calls a second going with a round
    trip of ROUND_TRIP seconds, and never fewer than ``workers``."""
    if rate is None:
        return max(1, workers)
    return max(1, workers, min(MAX_WORKERS, math.ceil(rate * ROUND_TRIP)))


def claim_size(rate: float | None, workers: int) -> int:
    """Recipients claimed at a time: about half a second of sending, enough
    to keep every thread busy, and at most 500."""
    if rate is None:
        return max(4 * workers, 200)
    return max(2 * workers, min(500, math.ceil(rate * WINDOW_SECONDS)))


def most_handed(window: int, workers: int) -> int:
    """The most messages one of ``workers`` threads hands at a time: its
    share of the ``window``, at least one, at most MAX_HANDED."""
    return max(1, min(MAX_HANDED, window // max(1, workers)))


def batch_size(current: int, stamp_seconds: float, per_message: float, most: int) -> int:
    """Messages a thread hands at a time next: as many as it delivers while
    one stamp commits (so that the commits cost it at most half its time),
    at least one, at most twice ``current`` (one slow commit is no reason to
    hand over many more) and at most ``most``."""
    wanted = most if per_message <= 0 else math.ceil(stamp_seconds / per_message)
    return max(1, min(most, 2 * current, wanted))


__all__ = ["batch_size", "claim_size", "most_handed", "pool_size"]
