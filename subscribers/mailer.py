"""The confirmation mailer: works through the confirmation queue until stopped.

    signup (web) ──notify()──> mailer ──send_due_confirmations(batch, pool)──> mail
    signup (any process) ──the database──┘ │ nothing due, or less than a batch:
                               └ wait for a notice, a change in the database
                                 (:class:`~subscribers.store.queue_watch.QueueWatch`)
                                 or ``poll`` seconds; then ``gather`` seconds
                                 more, so that a burst of signups goes out in
                                 one batch

The web service runs one in a thread and wakes it after each signup;
`publish serve` runs one in a process of its own, so that building and
sending mail never competes with answering requests, and the database tells
it of each signup. Either way the queue is in the database
(:mod:`subscribers.confirmation_queue`): a signup is never lost to a crash,
and several mailers can share it. ``poll`` is for what nothing announces:
a retry's backoff running out, another mailer's lease expiring. A mailer's
threads run at a lower CPU priority (:data:`NICENESS`): answers come first.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from subscribers.confirmation_queue import LEASE
from subscribers.ledger import new_worker_id
from subscribers.store.queue_watch import QueueWatch

if TYPE_CHECKING:
    from subscribers.service import Subscriptions

log = logging.getLogger(__name__)

NICENESS = 10
"""How far a mailer lowers the CPU priority of its threads: the machine's
CPUs are shared with the web service, whose answers come first. Under
contention the mailer gets about a tenth of their share and catches up
when they pause; its queue is in the database, so waiting loses nothing."""
GATHER = 0.05
"""Seconds a woken mailer waits for more signups before it claims a batch:
a signup's confirmation waits that long at most, and a burst of them costs
a few transactions, not a few per signup."""


class ConfirmationMailer:
    """Works through the confirmation queue until stopped.

    Each mailer claims its batches under a worker id of its own, with a
    ``lease`` (see :meth:`Subscriptions.send_due_confirmations`), and mails
    up to ``workers`` messages at once.
    """

    def __init__(
        self,
        service: Subscriptions,
        poll: float = 1.0,
        batch: int = 50,
        workers: int = 4,
        lease: dt.timedelta = LEASE,
        gather: float = GATHER,
        niceness: int = NICENESS,
    ) -> None:
        self.service = service
        self.poll = poll
        self.batch = batch
        self.workers = workers
        self.lease = lease
        self.gather = gather
        self.niceness = niceness
        self.worker = new_worker_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """Something may be due: look now rather than at the next poll."""
        self._wake.set()

    def run(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Send what is due, then wait for a notice, a change in the
        database or ``poll`` seconds (and ``gather`` more); repeat. Once
        stopped (:meth:`stop`, ``stopped()``), the messages in hand are
        finished and the rest of the batch is given back to the queue."""

        def halted() -> bool:
            return self._stop.is_set() or stopped()

        _give_way(self.niceness)
        with (
            ThreadPoolExecutor(self.workers, thread_name_prefix="confirm") as executor,
            QueueWatch(self.service.store.engine) as watch,
        ):
            while not halted():
                self._wake.clear()
                try:
                    taken = self.service.send_due_confirmations(
                        self.batch, executor, worker=self.worker, lease=self.lease, stopped=halted
                    )
                except Exception:  # the database went away for a moment, say
                    log.exception("the confirmation mailer failed; trying again")
                    taken = 0
                if taken < self.batch:
                    watch.wait(self.poll, self._wake)
                    self._stop.wait(self.gather)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="confirmation-mailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the messages in hand."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _give_way(niceness: int) -> None:
    """Lower this thread's CPU priority by ``niceness``, and so that of the
    threads it starts. On Linux the nice value is a thread's own; elsewhere
    it is the process's, so there only a process of its own lowers it (its
    main thread runs the mailer), never the web service's thread."""
    if niceness <= 0 or not hasattr(os, "nice"):
        return
    if not sys.platform.startswith("linux") and (
        threading.current_thread() is not threading.main_thread()
    ):
        return
    try:
        os.nice(niceness)
    except OSError:  # not allowed here: the mailer runs as it is
        log.debug("could not lower the mailer's priority", exc_info=True)


__all__ = ["ConfirmationMailer"]
