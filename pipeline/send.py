"""The send loop: claim, build, deliver, record, until nothing is left.

:class:`SendLoop` claims a small batch of recipients from the ledger, builds
each message (:mod:`pipeline.personalize`) and hands it to a pool of threads
that deliver through the transport, each first waiting its turn at the
shared :class:`~pipeline.pacing.Pacer`. Results go back to the ledger in
batches, in the transaction that claims the next batch. So at any moment at
most one batch (the *window*, about half a second of sending) is in
``sending``: that is the most a crash can leave undecided.

What a transport error does (see :mod:`pipeline.transports.base`):

    Throttled          slow the pacer, back off with jitter, retry
    TemporaryFailure   back off, retry a few times, then mark failed
    Rejected           mark this recipient failed; go on
    QuotaExhausted     release the rest; the send pauses until the quota allows
    SendingStopped     release the rest; the send stops

When ``stop`` is set (Ctrl-C or SIGTERM, see :func:`stop_on_signals`),
messages not yet handed to the transport are released back to pending, the
ones in flight finish and are recorded. Nothing is left in ``sending``.

The loop reports through a callback (:class:`Progress`); it never prints.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.pacing import Budget, Pacer, backoff
from pipeline.personalize import Recipient, UndeliverableAddress
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
    from subscribers.ledger import Claimed, Ledger

log = logging.getLogger(__name__)

MAX_THROTTLED = 8
"""Throttled this many times in a row, a message is marked failed (retried next run)."""
THROTTLE_BACKOFF = 0.1
"""Seconds before a throttled message's first retry (doubling, with jitter)."""
MAX_TEMPORARY = 4
"""Attempts at a message that keeps failing temporarily before it is marked failed."""
MAX_FAILURES_IN_A_ROW = 50
"""So many failures without one success stop the send: something is wrong
with the account or the message, not with the recipients."""
FLUSH_SECONDS = 0.5
PROGRESS_SECONDS = 0.2
WINDOW_SECONDS = 0.5
MAX_WORKERS = 64
ROUND_TRIP = 0.1
"""Seconds an API call is assumed to take when sizing the thread pool."""


@dataclass(frozen=True)
class Progress:
    """A snapshot for a progress bar, reported through the ``on_progress`` callback."""

    total: int
    sent: int
    failed: int
    skipped: int
    rate: float
    """Messages per second, over the last few seconds."""
    seconds_left: float | None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)


ProgressCallback = Callable[[Progress], None]


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


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


class SendLoop:
    """Claims, builds, delivers and records until nothing is left or it must stop."""

    def __init__(
        self,
        ledger: Ledger,
        send_id: int,
        personalize: Callable[[Recipient], OutgoingMessage],
        transport: Transport,
        *,
        pacer: Pacer,
        budget: Budget,
        workers: int,
        window: int,
        stop: threading.Event,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.ledger = ledger
        self.send_id = send_id
        self.personalize = personalize
        self.transport = transport
        self.pacer = pacer
        self.budget = budget
        self.workers = workers
        self.window = window
        self.stop = stop
        self.on_progress = on_progress
        self.halt = threading.Event()
        """Set when the loop must wind down (stop, quota, provider refusal)."""
        self.quota_error: QuotaExhausted | None = None
        self.stop_reason = ""
        self.sent = self.failed = self.skipped = 0
        self._in_a_row = 0
        self._samples: list[tuple[float, int]] = []
        self._last_progress = 0.0
        self._base = ledger.totals(send_id)

    # -- in the worker threads ----------------------------------------------

    def _deliver(self, row: Claimed, message: OutgoingMessage) -> Outcome:
        """Deliver one message, retrying what may be retried; never raises.

        A row given back unsent is ``pending``; with an ``error`` when an
        attempt was made (a timeout may still have delivered it).
        """
        throttled = temporary = 0
        while True:
            if self.halt.is_set():
                return Outcome(row.row_id, "pending")
            if not self.pacer.acquire(self.halt):
                return Outcome(row.row_id, "pending")
            if not self.budget.take():
                self._quota_used_up(QuotaExhausted("the daily quota is used up"))
                return Outcome(row.row_id, "pending")
            try:
                message_id = self.transport.send(message)
            except Throttled as exc:
                self.budget.give_back()
                self.pacer.throttled()
                throttled += 1
                if throttled >= MAX_THROTTLED:
                    return self._failed(row, f"throttled {throttled} times: {exc}")
                # The pacer has already slowed every thread; this thread's own
                # wait only keeps it from retrying in the same instant.
                if self.halt.wait(backoff(throttled, base=THROTTLE_BACKOFF)):
                    return Outcome(row.row_id, "pending", error=str(exc))
            except TemporaryFailure as exc:
                self.budget.give_back()
                temporary += 1
                if temporary >= MAX_TEMPORARY:
                    return self._failed(row, f"{exc} (after {temporary} attempts)")
                if self.halt.wait(backoff(temporary)):
                    return Outcome(row.row_id, "pending", error=str(exc))
            except QuotaExhausted as exc:
                self.budget.give_back()
                self._quota_used_up(exc)
                return Outcome(row.row_id, "pending")
            except SendingStopped as exc:
                self.budget.give_back()
                self._halt(str(exc))
                return Outcome(row.row_id, "pending")
            except (Rejected, TransportError) as exc:
                return self._failed(row, str(exc))
            except Exception as exc:
                log.exception("the %s transport failed unexpectedly", self.transport.name)
                return self._failed(row, f"{type(exc).__name__}: {exc}")
            else:
                self.pacer.succeeded()
                return Outcome(row.row_id, "sent", message_id=message_id)

    def _failed(self, row: Claimed, error: str) -> Outcome:
        log.info("not sent to %s: %s", row.email, error)
        return Outcome(row.row_id, "failed", error=error)

    def _quota_used_up(self, error: QuotaExhausted) -> None:
        if self.quota_error is None:
            self.quota_error = error
        self.halt.set()

    def _halt(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.halt.set()

    # -- in the main thread --------------------------------------------------

    def run(self) -> None:
        inflight: dict[Future[Outcome], Claimed] = {}
        done: list[Outcome] = []
        """Outcomes not yet written to the ledger."""
        exhausted = False
        last_flush = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="send")
        self._report(force=True)
        try:
            while True:
                if self.stop.is_set():
                    self.halt.set()
                if not self.halt.is_set() and not exhausted and len(inflight) <= self.window // 2:
                    claimed, skipped = self.ledger.claim(
                        self.send_id, self.window - len(inflight), done
                    )
                    done = []
                    last_flush = time.monotonic()
                    self.skipped += len(skipped)
                    exhausted = not claimed and not skipped
                    for row in claimed:
                        try:
                            message = self.personalize(
                                Recipient(row.subscriber_id, row.email, row.name)
                            )
                        except UndeliverableAddress as exc:
                            done.append(self._count(self._failed(row, str(exc))))
                            continue
                        inflight[pool.submit(self._deliver, row, message)] = row
                if not inflight:
                    if exhausted or self.halt.is_set():
                        break
                    continue
                finished, _ = wait(inflight, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in finished:
                    del inflight[future]
                    done.append(self._count(future.result()))
                if self.halt.is_set():
                    done.extend(self._release_queued(inflight))
                if done and (
                    len(done) >= self.window or time.monotonic() - last_flush >= FLUSH_SECONDS
                ):
                    self.ledger.record(done)
                    done = []
                    last_flush = time.monotonic()
                self.ledger.heartbeat(self.send_id)
                self._report()
        finally:
            # Whatever happened, wait for the calls in flight and record them.
            self.halt.set()
            done.extend(self._release_queued(inflight))
            pool.shutdown(wait=True)
            done.extend(self._count(future.result()) for future in inflight)
            self.ledger.record(done)
            self._report(force=True)

    @staticmethod
    def _release_queued(inflight: dict[Future[Outcome], Claimed]) -> list[Outcome]:
        """Cancel the deliveries no thread has started and take them out of
        ``inflight``: their rows go back to pending, never attempted."""
        cancelled = [future for future in inflight if future.cancel()]
        return [Outcome(inflight.pop(future).row_id, "pending") for future in cancelled]

    def _count(self, outcome: Outcome) -> Outcome:
        """Tally ``outcome``; stop the send after too many failures in a row."""
        if outcome.status == "sent":
            self.sent += 1
            self._in_a_row = 0
        elif outcome.status == "failed":
            self.failed += 1
            self._in_a_row += 1
            if self._in_a_row >= MAX_FAILURES_IN_A_ROW:
                self._halt(
                    f"{self._in_a_row} messages in a row failed; stopped "
                    f"(the last: {outcome.error or ''})"
                )
        elif outcome.status == "skipped":
            self.skipped += 1
        return outcome

    def progress(self) -> Progress:
        base = self._base
        now = time.monotonic()
        samples = self._samples
        samples.append((now, self.sent))
        while len(samples) > 2 and now - samples[0][0] > 10:
            samples.pop(0)
        elapsed = now - samples[0][0]
        rate = (self.sent - samples[0][1]) / elapsed if elapsed > 0.5 else 0.0
        sent = base.sent + self.sent
        failed = base.failed + self.failed
        skipped = base.skipped + self.skipped
        left = max(0, base.total - sent - failed - skipped)
        return Progress(
            total=base.total,
            sent=sent,
            failed=failed,
            skipped=skipped,
            rate=rate,
            seconds_left=left / rate if rate > 0 else None,
        )

    def _report(self, *, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_SECONDS:
            return
        self._last_progress = now
        self.on_progress(self.progress())


# ---------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (SIGINT) or SIGTERM, so that a send
    winds down cleanly; a second Ctrl-C interrupts at once."""
    import signal

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("stopping after the messages in flight (Ctrl-C again to abort)")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "Progress",
    "ProgressCallback",
    "SendLoop",
    "claim_size",
    "pool_size",
    "stop_on_signals",
]
