"""Delivering one message: its turn at the pacer, the quota, the transport's call.

    Delivery.deliver(row, message)
      wait for a writable ledger ─> turn at the Pacer ─> one from the Budget
        ─> transport.send(message) ─> Outcome(sent | failed | pending), or
           None when the row turned out to be another sender's

What a transport error does (see :mod:`pipeline.transports.base`):

    Throttled          slow the pacer, back off with jitter, retry
    TemporaryFailure   back off, retry a few times, then mark failed
    Rejected           mark this recipient failed; go on
    QuotaExhausted     release the rest; the send pauses until the quota allows
    SendingStopped     release the rest; the send stops

A row given back unsent is ``pending``, with an ``error`` when an attempt
was made (a timeout may still have delivered it), so that the next run
sends it again. The send loop (:mod:`pipeline.send`) runs one delivery at
a time on each of its threads; it learns of a used-up quota or a provider's
refusal through the callbacks, and winds down by setting ``halt``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.pacing import Budget, Pacer, backoff
from pipeline.transports.base import (
    OutgoingMessage,
    QuotaExhausted,
    Rejected,
    SendingStopped,
    TemporaryFailure,
    Throttled,
    Transport,
    TransportError,
)
from subscribers.ledger import Outcome

if TYPE_CHECKING:
    from subscribers.ledger import Claimed

log = logging.getLogger(__name__)

MAX_THROTTLED = 8
"""Throttled this many times in a row, a message is marked failed (retried next run)."""
THROTTLE_BACKOFF = 0.1
"""Seconds before a throttled message's first retry (doubling, with jitter)."""
MAX_TEMPORARY = 4
"""Attempts at a message that keeps failing temporarily before it is marked failed."""

Hand = Callable[[], bool | None]
"""Hands a row over to the transport, committed: True; None when it is
another sender's now; False when the database failed."""


def failed(row: Claimed, error: str) -> Outcome:
    """``row`` marked failed with ``error``, and logged."""
    log.info("not sent to %s: %s", row.email, error)
    return Outcome(row.row_id, "failed", error=error)


class Delivery:
    """Delivers messages one at a time through ``transport``, retrying what
    may be retried, for as long as ``halt`` is not set."""

    def __init__(
        self,
        transport: Transport,
        *,
        pacer: Pacer,
        budget: Budget,
        halt: threading.Event,
        writable: Callable[[threading.Event], bool],
        on_quota: Callable[[QuotaExhausted], None],
        on_stopped: Callable[[str], None],
    ) -> None:
        self.transport = transport
        self.pacer = pacer
        self.budget = budget
        self.halt = halt
        self.writable = writable
        """Waits while the ledger cannot be written; False once it must stop."""
        self.on_quota = on_quota
        """Told when the provider's quota (or the send's budget) is used up."""
        self.on_stopped = on_stopped
        """Told why, when the provider stops the send (:class:`SendingStopped`)."""

    def deliver(
        self, row: Claimed, message: OutgoingMessage, hand: Hand | None = None
    ) -> Outcome | None:
        """Deliver one message, retrying what may be retried; never raises.

        With ``hand``, the row is handed over just before the first call, in
        its turn at the pacer (:meth:`Pacer.acquire`'s ``ready``); None when
        it turns out to be another sender's.
        """
        throttled = temporary = 0
        attempted: str | None = None
        lost = False

        def ready() -> bool:
            nonlocal hand, lost
            if hand is None:
                return True
            handed = hand()
            hand = None
            lost = handed is None
            return bool(handed)

        while True:
            if self.halt.is_set() or not self.writable(self.halt):
                return Outcome(row.row_id, "pending", error=attempted)
            if not self.pacer.acquire(self.halt, ready if hand is not None else None):
                return None if lost else Outcome(row.row_id, "pending", error=attempted)
            if not self.budget.take():
                self.on_quota(QuotaExhausted("the daily quota is used up"))
                return Outcome(row.row_id, "pending", error=attempted)
            try:
                message_id = self.transport.send(message)
            except Throttled as exc:
                self.budget.give_back()
                self.pacer.throttled()
                throttled += 1
                attempted = str(exc)
                if throttled >= MAX_THROTTLED:
                    return failed(row, f"throttled {throttled} times: {exc}")
                # The pacer has already slowed every thread; this thread's own
                # wait only keeps it from retrying in the same instant.
                if self.halt.wait(backoff(throttled, base=THROTTLE_BACKOFF)):
                    return Outcome(row.row_id, "pending", error=str(exc))
            except TemporaryFailure as exc:
                self.budget.give_back()
                temporary += 1
                attempted = str(exc)
                if temporary >= MAX_TEMPORARY:
                    return failed(row, f"{exc} (after {temporary} attempts)")
                if self.halt.wait(backoff(temporary)):
                    return Outcome(row.row_id, "pending", error=str(exc))
            except QuotaExhausted as exc:
                self.budget.give_back()
                self.on_quota(exc)
                return Outcome(row.row_id, "pending", error=attempted)
            except SendingStopped as exc:
                self.budget.give_back()
                self.on_stopped(str(exc))
                return Outcome(row.row_id, "pending", error=attempted)
            except (Rejected, TransportError) as exc:
                return failed(row, str(exc))
            except Exception as exc:
                log.exception("the %s transport failed unexpectedly", self.transport.name)
                return failed(row, f"{type(exc).__name__}: {exc}")
            else:
                self.pacer.succeeded()
                return Outcome(row.row_id, "sent", message_id=message_id)


__all__ = ["MAX_TEMPORARY", "MAX_THROTTLED", "Delivery", "Hand", "failed"]
