"""The sending threads: a queue of built messages, and what a thread does with a few.

    SendLoop ──put(rows, messages)──> queue ──> each of the threads:
                                                  take a batch from the queue
                                                  hand it over (committed first)
                                                  deliver each (pipeline.delivery)
                                                  record each result (the Recorder)
    SendLoop <──load()── how many wait and whether every thread is idle,
                         so that the loop claims more in time
    SendLoop <──wait()── returns when the queue has run down to ``low`` or
                         every thread is idle: the loop is woken when it has
                         something to do, not after each message
    SendLoop ──close()──> what no thread took goes back to pending; the
                          calls in flight finish

Paced (a rate), each message is handed over in its turn at the pacer, just
before its call (:meth:`~pipeline.pacing.Pacer.acquire`'s ``ready``; with a
shared budget, just before the thread takes its slot), so that those waiting
for their turn are not undecided after a crash, and a thread takes one
message at a time. Unpaced, a thread hands its whole batch
over at once and sizes the next from how long the stamp took against the
calls (:func:`pipeline.sizing.batch_size`).

The threads and the loop wait on two conditions over one lock: a thread
waits for messages (``put`` wakes one thread per message), the loop for
room in the queue (woken only when the queue falls to ``low`` or the
threads run out of work), so that a message done wakes nobody else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from pipeline.delivery import Delivery, Hand
from pipeline.recorder import Recorder
from pipeline.sizing import batch_size
from pipeline.transports.base import OutgoingMessage
from subscribers.ledger import Claimed, Outcome

log = logging.getLogger(__name__)

Ready = tuple[Claimed, OutgoingMessage]
"""A claimed row with its message, built and waiting for a thread."""


class Senders:
    """Threads that deliver what is put in their queue and record the results."""

    def __init__(
        self,
        recorder: Recorder,
        delivery: Delivery,
        *,
        most: int,
        count: Callable[[Outcome], Outcome],
        on_crash: Callable[[str], None],
    ) -> None:
        self.recorder = recorder
        self.delivery = delivery
        self.halt = delivery.halt
        self.most = most
        """The most messages one thread hands at a time (unpaced)."""
        self.count = count
        """Tallies a result before it is recorded (the loop's counts)."""
        self.on_crash = on_crash
        """Told when a thread fails with a bug, so that the send stops."""
        self._queue: deque[Ready] = deque()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        """Threads wait on it for messages."""
        self._room = threading.Condition(self._lock)
        """The loop waits on it for the queue to run down (see :meth:`wait`)."""
        self.low = -1
        """The loop is woken once no more than this many messages wait (-1:
        only once every thread is idle); the loop sets it before it waits."""
        self._busy = 0
        self._closing = False
        self._threads: list[threading.Thread] = []

    # -- for the loop, in the main thread ------------------------------------

    def start(self, workers: int) -> None:
        self._threads = [
            threading.Thread(target=self._work, name=f"send-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, ready: list[Ready]) -> None:
        with self._lock:
            self._queue.extend(ready)
            self._ready.notify(len(ready))

    def load(self) -> tuple[int, bool]:
        """How many messages wait for a thread, and whether every thread is idle."""
        with self._lock:
            return len(self._queue), self._busy == 0

    def wait(self, timeout: float) -> None:
        """Until no more than :attr:`low` messages wait, or every thread is
        idle with none waiting (or ``timeout`` seconds, or :meth:`wake`)."""
        with self._lock:
            if len(self._queue) > self.low and not self._idle():
                self._room.wait(timeout)

    def wake(self) -> None:
        """Have everyone waiting look again (the loop must wind down)."""
        with self._lock:
            self._ready.notify_all()
            self._room.notify_all()

    def close(self) -> None:
        """Release what no thread has taken (pending again) and let the calls
        in flight finish; every thread has ended when this returns."""
        with self._lock:
            queued = [row for row, _ in self._queue]
            self._queue.clear()
            self._closing = True
            self._ready.notify_all()
            self._room.notify_all()
        for row in queued:
            self.recorder.record(Outcome(row.row_id, "pending"))
        for thread in self._threads:
            thread.join()

    # -- in the sending threads ----------------------------------------------

    def _work(self) -> None:
        size = 1
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
                self._busy += 1
                if len(self._queue) <= self.low:
                    self._room.notify()
            try:
                size = self._send_batch(batch, size)
            except BaseException:  # a bug: stop the send rather than go on a thread short
                log.exception("a sending thread failed")
                self.on_crash("a sending thread failed unexpectedly")
                raise
            finally:
                with self._lock:
                    self._busy -= 1
                    if self._idle():
                        self._room.notify()

    def _idle(self) -> bool:
        """No message waits and no thread is busy (the lock held)."""
        return self._busy == 0 and not self._queue

    def _send_batch(self, batch: list[Ready], size: int) -> int:
        """Hand ``batch`` over (committed first), deliver it, record each
        result; the batch size to take next."""
        if self.delivery.pacer.rate is not None:
            for row, message in batch:
                self._record(row, self.delivery.deliver(row, message, hand=self._hand_one(row)))
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
            self._record(row, self.delivery.deliver(row, message))
        per_message = (time.monotonic() - stamped) / len(batch)
        return batch_size(size, stamped - started, per_message, self.most)

    def _record(self, row: Claimed, outcome: Outcome | None) -> None:
        if outcome is None:
            log.warning("%s was taken back by another sender; leaving it to it", row.email)
            return
        self.recorder.record(self.count(outcome))

    def _hand_one(self, row: Claimed) -> Hand:
        """Hands ``row`` over, committed, when called: True; None when it is
        another sender's now; False when the database failed."""

        def hand() -> bool | None:
            handed = self.recorder.hand([row.row_id])
            if handed is None:
                return False
            return True if row.row_id in handed else None

        return hand


__all__ = ["Ready", "Senders"]
