"""The send loop: claim, build, hand, deliver, record, until nothing is left.

    ledger.claim(window) ──> personalize ──> Senders' queue ──> sending threads:
         ^                                                    hand (committed),
         │                                                    deliver, record
         └── claimed again while half the window is left; when the claims
             run dry: take back dead workers' rows, wait for live ones'

:class:`SendLoop` claims a small batch of recipients from the ledger (the
*window*, about half a second of sending: :mod:`pipeline.sizing`), builds
each message (:mod:`pipeline.personalize`) and queues it for a pool of
sending threads (:mod:`pipeline.senders`). Each thread takes a few messages
from the queue, has them stamped as handed to the transport
(:meth:`pipeline.recorder.Recorder.hand`: committed before any of them
goes), then delivers them one by one (:mod:`pipeline.delivery`: each first
waiting its turn at the shared :class:`~pipeline.pacing.Pacer`, retrying
what may be retried), and hands each result to the recorder, which commits
it within a few tens of milliseconds.

Paced (SES, or any ``--rate``), a message is handed over in its turn at the
pacer, a few milliseconds before its call (with a shared budget, before its
thread takes a slot), so a crash (SIGKILL, power) leaves undecided only the
messages in flight: at most one per thread. Unpaced (the
outbox, an SMTP relay without a rate), a thread hands over as many messages
at a time as it delivers while a stamp commits: one whenever a call takes
longer than a commit, more only for a transport that answers at once (whose
records, like the outbox's files, then settle them). Rows claimed and never
handed are simply pending again for the next run.

A used-up quota releases the rest and pauses the send; a provider's refusal
(or too many failures in a row) stops it. When the claims run dry the loop
is not done until every recipient is decided: it takes back what dead
workers left (``take_back``: a lease run out, or a process gone from this
host; see :meth:`Ledger.take_back`) and sends it, and waits, polling, while
live workers elsewhere still hold rows; their lease bounds the wait should
they die.

When the database fails, nothing more is handed to the transport; the
recorder retries for its bound and the send goes on if it comes back.
Otherwise the loop stops, the calls in flight finish, and the results that
could not be written are left in :attr:`SendLoop.unwritten` (the caller
keeps them in a recovery file) with the cause in :attr:`SendLoop.db_failure`.

Several senders of one account (processes, machines) share its rate through
the slots each books in the database (``slots``: :mod:`pipeline.slots`),
which the pacer hands out one per call.

When ``stop`` is set (Ctrl-C or SIGTERM, see
:func:`pipeline.signals.stop_on_signals`), messages not yet handed to the
transport are released back to pending, the ones in flight finish and are
recorded. Nothing is left in ``sending``.

The loop reports through a callback (:class:`~pipeline.progress.Progress`);
it never prints.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.delivery import Delivery, failed
from pipeline.pacing import Budget, Pacer
from pipeline.personalize import Recipient
from pipeline.progress import Progress, ProgressCallback, ProgressMeter
from pipeline.recorder import HAND_SECONDS, Recorder
from pipeline.senders import Ready, Senders
from pipeline.sizing import claim_size, most_handed, pool_size
from pipeline.transports.base import OutgoingMessage, QuotaExhausted, Transport
from subscribers.errors import DatabaseUnavailable, UndeliverableAddress
from subscribers.ledger import Outcome, Resumed

if TYPE_CHECKING:
    from pipeline.slots import SlotFeed
    from subscribers.ledger import Ledger

log = logging.getLogger(__name__)

MAX_FAILURES_IN_A_ROW = 50
"""So many failures without one success stop the send: something is wrong
with the account or the message, not with the recipients."""
POLL_SECONDS = 1.0
"""How often a sender waiting for other workers' rows looks again."""


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
        slots: SlotFeed | None = None,
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
        self.slots = slots
        """Books the pacer's slots in the shared budget (several senders)."""
        if slots is not None:
            slots.on_failure = self._db_failed
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
        self.recorder = Recorder(
            ledger,
            send_id,
            on_failure=self._db_failed,
            hand_seconds=0.0 if pacer.rate is None else HAND_SECONDS,
        )
        self.delivery = Delivery(
            transport,
            pacer=pacer,
            budget=budget,
            halt=self.halt,
            writable=self.recorder.wait_writable,
            on_quota=self._quota_used_up,
            on_stopped=self._halt,
        )
        self.senders = Senders(
            self.recorder,
            self.delivery,
            most=most_handed(window, workers),
            count=self._count,
            on_crash=self._halt,
        )
        self._in_a_row = 0
        self._counting = threading.Lock()
        self._waiting = False
        self._meter = ProgressMeter(ledger.totals(send_id), on_progress)

    # -- what winds it down (called from any thread) --------------------------

    def _quota_used_up(self, error: QuotaExhausted) -> None:
        if self.quota_error is None:
            self.quota_error = error
        self.halt.set()
        self.senders.wake()

    def _halt(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.halt.set()
        self.senders.wake()

    def _db_failed(self, error: DatabaseUnavailable) -> None:
        if self.db_failure is None:
            self.db_failure = error
        self.ledger.give_up.set()
        self.halt.set()
        self.senders.wake()

    # -- the loop --------------------------------------------------

    def run(self) -> None:
        self.recorder.start()
        if self.slots is not None:
            self.slots.start()
        self.senders.start(self.workers)
        self._report(force=True)
        exhausted = False
        try:
            while True:
                if self.stop.is_set():
                    self.halt.set()
                if self.halt.is_set():
                    break
                queued, idle = self.senders.load()
                if not exhausted and queued <= self.window // 2:
                    exhausted = self._claim(self.window - queued) == 0
                    continue
                if exhausted and queued == 0 and idle:
                    if not self._more_to_do():
                        break
                    exhausted = False
                    continue
                # Woken when there is room to claim into, or (claims run dry)
                # when the threads are done: not after every message.
                self.senders.low = -1 if exhausted else self.window // 2
                self.senders.wait(0.25)
                self._report()
        except DatabaseUnavailable as exc:
            self._db_failed(exc)
        finally:
            self._wind_down()

    def _claim(self, limit: int) -> int:
        """Claim up to ``limit`` rows, build their messages and queue them;
        the number of rows claimed (0: none left pending)."""
        claimed, skipped = self.ledger.claim(self.send_id, limit)
        with self._counting:
            self.skipped += len(skipped)
        ready: list[Ready] = []
        for row in claimed:
            try:
                message = self.personalize(Recipient(row.subscriber_id, row.email, row.name))
            except UndeliverableAddress as exc:
                self.recorder.record(self._count(failed(row, str(exc))))
                continue
            ready.append((row, message))
        if ready:
            self.senders.put(ready)
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

    def _wind_down(self) -> None:
        """Release what no thread has taken, let the calls in flight finish,
        and commit every result (or keep those the database would not take)."""
        self.halt.set()
        self.senders.close()
        if self.slots is not None:
            self.slots.close()
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
        """Where the send stands now: the ledger's totals plus this run's counts."""
        return self._meter.snapshot(self.sent, self.failed, self.skipped)

    def _report(self, *, force: bool = False) -> None:
        self._meter.report(self.sent, self.failed, self.skipped, force=force)


__all__ = [
    "Progress",
    "ProgressCallback",
    "SendLoop",
    "claim_size",
    "pool_size",
]
