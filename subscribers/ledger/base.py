"""What every part of the ledger shares: the database, this worker, its
lease, and how a unit of work is run.

    Ledger(engine, worker, lease=, retry_seconds=)
      └─ _retrying(work)  one unit of work (a function that opens its own
                          connection or transaction), tried again while the
                          database fails in a way that may pass; then
                          DatabaseUnavailable

Every public method of :class:`~subscribers.ledger.Ledger` is one such unit
of work (see :func:`subscribers.db.retrying`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from subscribers import db
from subscribers.ledger.workers import LEASE, new_worker_id
from subscribers.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

T = TypeVar("T")


class LedgerBase:
    """The state the ledger's parts share, for one worker."""

    def __init__(
        self,
        engine: Engine,
        worker: str | None = None,
        *,
        lease: dt.timedelta = LEASE,
        retry_seconds: float = 0.0,
    ) -> None:
        self.engine = engine
        self.worker = worker or new_worker_id()
        self.lease = lease
        self.heartbeat_every = lease / 6
        self.retry_seconds = retry_seconds
        self.give_up = threading.Event()
        """Set: no more retries (the run is stopping on a database failure)."""
        self.health: Callable[[bool], None] | None = None
        """Told False when a unit of work fails and will be tried again,
        True when a write succeeds (see :class:`pipeline.recorder.Recorder`)."""
        self._last_heartbeat = utcnow()
        """When this worker last refreshed its claims (see ``heartbeat``)."""

    def _retrying(self, work: Callable[[], T], *, writing: bool = True) -> T:
        health = self.health
        result = db.retrying(
            self.engine,
            work,
            seconds=self.retry_seconds,
            give_up=self.give_up,
            writing=writing,
            on_failure=None if health is None else lambda _exc: health(False),
        )
        if writing and health is not None:
            health(True)
        return result
