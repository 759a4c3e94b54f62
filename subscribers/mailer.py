"""The confirmation mailer: works through the confirmation queue until stopped.

    signup (web) ──notify()──> mailer ──send_due_confirmations(batch, pool)──> mail
                               │ nothing due, or less than a batch:
                               └ wait for the next notice or ``poll`` seconds

The web service runs one in a thread and wakes it after each signup;
`publish serve` runs one in a process of its own, so that building and
sending mail never competes with answering requests. Either way the queue
is in the database (:mod:`subscribers.confirmation_queue`): a signup is
never lost to a crash, and several mailers can share it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from subscribers.confirmation_queue import LEASE
from subscribers.ledger import new_worker_id

if TYPE_CHECKING:
    from subscribers.service import Subscriptions

log = logging.getLogger(__name__)


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
    ) -> None:
        self.service = service
        self.poll = poll
        self.batch = batch
        self.workers = workers
        self.lease = lease
        self.worker = new_worker_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """Something may be due: look now rather than at the next poll."""
        self._wake.set()

    def run(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Send what is due, then wait for a notice or ``poll`` seconds; repeat.
        Once stopped (:meth:`stop`, ``stopped()``), the messages in hand are
        finished and the rest of the batch is given back to the queue."""

        def halted() -> bool:
            return self._stop.is_set() or stopped()

        with ThreadPoolExecutor(self.workers, thread_name_prefix="confirm") as executor:
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
                    self._wake.wait(self.poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="confirmation-mailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the messages in hand."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


__all__ = ["ConfirmationMailer"]
