"""The send loop: claim, build, hand, deliver, record, until nothing is left.

:class:`SendLoop` claims a small batch of recipients from the ledger (the
*window*, about half a second of sending), builds each message
(:mod:`pipeline.personalize`) and queues it for a pool of sending threads.
Each thread takes a few messages from the queue, has them stamped as handed
to the transport (:meth:`pipeline.recorder.Recorder.hand`: committed before
any of them goes), then delivers them one by one, each first waiting its
turn at the shared :class:`~pipeline.pacing.Pacer`, and hands each result to
the recorder, which commits it within a few tens of milliseconds.

Paced (SES, or any ``--rate``), a message is handed over in its turn at the
pacer, a few milliseconds before its call, so a crash (SIGKILL, power) leaves
undecided only the messages in flight: at most one per thread. Unpaced (the
outbox, an SMTP relay without a rate), a thread hands over as many messages
at a time as it delivers while a stamp commits: one whenever a call takes
longer than a commit, more only for a transport that answers at once (whose
records, like the outbox's files, then settle them). Rows claimed and never
handed are simply pending again for the next run.

What a transport error does (see :mod:`pipeline.transports.base`):

    Throttled          slow the pacer, back off with jitter, retry
    TemporaryFailure   back off, retry a few times, then mark failed
    Rejected           mark this recipient failed; go on
    QuotaExhausted     release the rest; the send pauses until the quota allows
    SendingStopped     release the rest; the send stops

When the claims run dry the loop is not done until every recipient is
decided: it takes back what dead workers left (``take_back``: a lease run
out, or a process gone from this host; see :meth:`Ledger.take_back`) and
sends it, and waits, polling, while live workers elsewhere still hold rows;
their lease bounds the wait should they die.

When the database fails, nothing more is handed to the transport; the
recorder retries for its bound and the send goes on if it comes back.
Otherwise the loop stops, the calls in flight finish, and the results that
could not be written are left in :attr:`SendLoop.unwritten` (the caller
keeps them in a recovery file) with the cause in :attr:`SendLoop.db_failure`.

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
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.pacing import Budget, Pacer, backoff
from pipeline.personalize import Recipient, UndeliverableAddress
from pipeline.recorder import Recorder
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
from subscribers.errors import DatabaseUnavailable
from subscribers.ledger import Outcome, Resumed

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
PROGRESS_SECONDS = 0.2
WINDOW_SECONDS = 0.5
MAX_WORKERS = 64
ROUND_TRIP = 0.1
"""Seconds an API call is assumed to take when sizing the thread pool."""
MAX_HANDED = 64
"""The most messages one thread has handed at a time (a transport that answers at once)."""
POLL_SECONDS = 1.0
"""How often a sender waiting for other workers' rows looks again."""


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


def batch_size(current: int, stamp_seconds: float, per_message: float, most: int) -> int:
    """Messages a thread hands at a time next: as many as it delivers while
    one stamp commits (so that the commits cost it at most half its time),
    at least one, at most twice ``current`` (one slow commit is no reason to
    hand over many more) and at most ``most``."""
    wanted = most if per_message <= 0 else math.ceil(stamp_seconds / per_message)
    return max(1, min(most, 2 * current, wanted))


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


class SendLoop:
    """Claims, builds, delivers and records until every recipient is decided
    or it must stop."""

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
        take_back: Callable[[], Resumed] | None = None,
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
        self.take_back = take_back or (lambda: ledger.take_back(send_id, own=True))
        """Takes back dead workers' rows and this worker's own strays (see
        :meth:`Ledger.take_back`), once all it knows of is decided."""
        self.halt = threading.Event()
        """Set when the loop must wind down (stop, quota, provider refusal, database)."""
        self.quota_error: QuotaExhausted | None = None
        self.stop_reason = ""
        self.db_failure: DatabaseUnavailable | None = None
        self.unwritten: list[Outcome] = []
        """Results the database would not take (after a ``db_failure``)."""
        self.taken_back = Resumed()
        """What this run took back from dead workers while it ran."""
        self.sent = self.failed = self.skipped = 0
        self.recorder = Recorder(ledger, send_id, on_failure=self._db_failed)
        self._in_a_row = 0
        self._counting = threading.Lock()
        self._queue: deque[tuple[Claimed, OutgoingMessage]] = deque()
        self._changed = threading.Condition()
        self._busy = 0
        self._closing = False
        self._most = max(1, min(MAX_HANDED, window // max(1, workers)))
        self._samples: list[tuple[float, int]] = []
        self._last_progress = 0.0
        self._waiting = False
        self._base = ledger.totals(send_id)

    # -- in the sending threads ----------------------------------------------

    def _work(self) -> None:
        size = 1
        while True:
            with self._changed:
                while not self._queue and not self._closing:
                    self._changed.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
                self._busy += 1
            try:
                size = self._send_batch(batch, size)
            except BaseException:  # a bug: stop the send rather than go on a thread short
                log.exception("a sending thread failed")
                self._halt("a sending thread failed unexpectedly")
                raise
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()

    def _send_batch(self, batch: list[tuple[Claimed, OutgoingMessage]], size: int) -> int:
        """Hand ``batch`` over (committed first), deliver it, record each
        result; the batch size to take next.

        Paced, each message is handed over in its turn at the pacer, just
        before its call (:meth:`Pacer.acquire`'s ``ready``), so that those
        waiting for their turn are not undecided after a crash; unpaced, the
        batch is handed over at once."""
        if self.pacer.rate is not None:
            for row, message in batch:
                self._record(row, self._deliver(row, message, hand=True))
            return 1
        started = time.monotonic()
        handed = None
        if not self.halt.is_set() and self.recorder.wait_writable(self.halt):
            handed = self.recorder.hand([row.row_id for row, _ in batch])
        if handed is None:  # stopping, or the database failed: none of it goes
            for row, _ in batch:
                self.recorder.record(Outcome(row.row_id, "pending"))
            return size
        stamped = time.monotonic()
        for row, message in batch:
            if row.row_id not in handed:
                self._record(row, None)
                continue
            self._record(row, self._deliver(row, message))
        per_message = (time.monotonic() - stamped) / len(batch)
        return batch_size(size, stamped - started, per_message, self._most)

    def _record(self, row: Claimed, outcome: Outcome | None) -> None:
        if outcome is None:
            log.warning("%s was taken back by another sender; leaving it to it", row.email)
            return
        self.recorder.record(self._count(outcome))

    def _hand_one(self, row: Claimed) -> bool | None:
        """Hand ``row`` over, committed: True; None when it is another
        sender's now; False when the database failed."""
        handed = self.recorder.hand([row.row_id])
        if handed is None:
            return False
        return True if row.row_id in handed else None

    def _deliver(
        self, row: Claimed, message: OutgoingMessage, *, hand: bool = False
    ) -> Outcome | None:
        """Deliver one message, retrying what may be retried; never raises.

        A row given back unsent is ``pending``; with an ``error`` when an
        attempt was made (a timeout may still have delivered it). With
        ``hand``, the row is handed over just before the first call; None
        when it turns out to be another sender's.
        """
        throttled = temporary = 0
        attempted: str | None = None
        lost = False

        def ready() -> bool:
            nonlocal hand, lost
            if not hand:
                return True
            handed = self._hand_one(row)
            hand = False
            lost = handed is None
            return bool(handed)

        while True:
            if self.halt.is_set() or not self.recorder.wait_writable(self.halt):
                return Outcome(row.row_id, "pending", error=attempted)
            if not self.pacer.acquire(self.halt, ready if hand else None):
                return None if lost else Outcome(row.row_id, "pending", error=attempted)
            if not self.budget.take():
                self._quota_used_up(QuotaExhausted("the daily quota is used up"))
                return Outcome(row.row_id, "pending", error=attempted)
            try:
                message_id = self.transport.send(message)
            except Throttled as exc:
                self.budget.give_back()
                self.pacer.throttled()
                throttled += 1
                attempted = str(exc)
                if throttled >= MAX_THROTTLED:
                    return self._failed(row, f"throttled {throttled} times: {exc}")
                # The pacer has already slowed every thread; this thread's own
                # wait only keeps it from retrying in the same instant.
                if self.halt.wait(backoff(throttled, base=THROTTLE_BACKOFF)):
                    return Outcome(row.row_id, "pending", error=str(exc))
            except TemporaryFailure as exc:
                self.budget.give_back()
                temporary += 1
                attempted = str(exc)
                if temporary >= MAX_TEMPORARY:
                    return self._failed(row, f"{exc} (after {temporary} attempts)")
                if self.halt.wait(backoff(temporary)):
                    return Outcome(row.row_id, "pending", error=str(exc))
            except QuotaExhausted as exc:
                self.budget.give_back()
                self._quota_used_up(exc)
                return Outcome(row.row_id, "pending", error=attempted)
            except SendingStopped as exc:
                self.budget.give_back()
                self._halt(str(exc))
                return Outcome(row.row_id, "pending", error=attempted)
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

    def _db_failed(self, error: DatabaseUnavailable) -> None:
        if self.db_failure is None:
            self.db_failure = error
        self.ledger.give_up.set()
        self.halt.set()
        with self._changed:
            self._changed.notify_all()

    # -- in the main thread --------------------------------------------------

    def run(self) -> None:
        self.recorder.start()
        threads = [
            threading.Thread(target=self._work, name=f"send-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        self._report(force=True)
        exhausted = False
        try:
            while True:
                if self.stop.is_set():
                    self.halt.set()
                if self.halt.is_set():
                    break
                with self._changed:
                    queued, idle = len(self._queue), self._busy == 0
                if not exhausted and queued <= self.window // 2:
                    exhausted = self._claim(self.window - queued) == 0
                    continue
                if exhausted and queued == 0 and idle:
                    if not self._more_to_do():
                        break
                    exhausted = False
                    continue
                with self._changed:
                    self._changed.wait(0.25)
                self._report()
        except DatabaseUnavailable as exc:
            self._db_failed(exc)
        finally:
            self._wind_down(threads)

    def _claim(self, limit: int) -> int:
        """Claim up to ``limit`` rows, build their messages and queue them;
        the number of rows claimed (0: none left pending)."""
        claimed, skipped = self.ledger.claim(self.send_id, limit)
        with self._counting:
            self.skipped += len(skipped)
        ready: list[tuple[Claimed, OutgoingMessage]] = []
        for row in claimed:
            try:
                message = self.personalize(Recipient(row.subscriber_id, row.email, row.name))
            except UndeliverableAddress as exc:
                self.recorder.record(self._count(self._failed(row, str(exc))))
                continue
            ready.append((row, message))
        if ready:
            with self._changed:
                self._queue.extend(ready)
                self._changed.notify_all()
        return len(claimed) + len(skipped)

    def _more_to_do(self) -> bool:
        """Everything this worker claimed is decided: take back what dead
        workers left, and wait while live ones hold rows. False when every
        recipient is decided (or the loop must stop)."""
        if not self.recorder.flush():
            return False
        self.taken_back += self.take_back()
        totals = self.ledger.totals(self.send_id)
        if totals.pending:
            return True
        if not totals.sending:
            return False
        if not self._waiting:
            self._waiting = True
            workers = ", ".join(self.ledger.live_workers(self.send_id)) or "another sender"
            log.warning(
                "waiting for %d recipients that %s is sending (taken back if it stops "
                "renewing its lease for %.0f s)",
                totals.sending,
                workers,
                self.ledger.lease.total_seconds(),
            )
        deadline = time.monotonic() + min(POLL_SECONDS, self.ledger.lease.total_seconds() / 4)
        while time.monotonic() < deadline and not (self.stop.is_set() or self.halt.is_set()):
            self.halt.wait(0.05)
            self._report()
        return True

    def _wind_down(self, threads: list[threading.Thread]) -> None:
        """Release what no thread has taken, let the calls in flight finish,
        and commit every result (or keep those the database would not take)."""
        self.halt.set()
        with self._changed:
            queued = [row for row, _ in self._queue]
            self._queue.clear()
            self._closing = True
            self._changed.notify_all()
        for row in queued:
            self.recorder.record(Outcome(row.row_id, "pending"))
        for thread in threads:
            thread.join()
        self.unwritten = self.recorder.close()
        if self.recorder.failure is not None and self.db_failure is None:
            self.db_failure = self.recorder.failure
        self._report(force=True)

    def _count(self, outcome: Outcome) -> Outcome:
        """Tally ``outcome``; stop the send after too many failures in a row."""
        with self._counting:
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
