"""Waiting for the confirmation queue to change, without asking the queue
over and over: a confirmation mailer wakes when a signup may have queued
one, in whichever process it was made.

    QueueWatch(engine).wait(seconds, woken)
      returns once the database may hold new work, ``woken`` is set (a
      notice from this process, a stop) or ``seconds`` have passed
        PostgreSQL  LISTEN on a connection of its own: every signup that
                    queues a confirmation NOTIFYs (store/form_signups.py),
                    delivered at its commit
        SQLite      PRAGMA data_version on a connection of its own, every
                    :data:`SQLITE_EVERY` seconds: it changes when another
                    connection commits, and reading it takes no lock and
                    reads no page (it is in the write-ahead log's index, in
                    shared memory)
      should the database go away, it waits out ``seconds`` and looks again

The watch starts when it is entered, before the mailer's first look at the
queue, so that nothing committed between a look and the next wait is
missed. The mailer's own commits count as changes too (on SQLite): one
look at an empty queue after a batch, no more.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from subscribers.store.form_signups import QUEUE_CHANNEL

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

SQLITE_EVERY = 0.02
"""Seconds between two looks at SQLite's data_version."""
POSTGRES_EVERY = 0.05
"""Seconds a PostgreSQL watch waits for a notification before it looks at
``woken`` again."""


class QueueWatch:
    """A watch on ``engine``'s confirmation queue; :meth:`close` it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw: Any = None
        self._driver: Any = None
        self._version: int | None = None

    def __enter__(self) -> QueueWatch:
        """Start watching now: what is committed from here on wakes the
        next :meth:`wait`, even if it comes before that wait begins."""
        try:
            self._open()
        except Exception:  # the database is not there yet: wait() opens it
            log.warning("cannot watch the confirmation queue for now", exc_info=True)
            self.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, seconds: float, woken: threading.Event) -> bool:
        """Wait as the module says; True if the database changed."""
        deadline = time.monotonic() + seconds
        try:
            self._open()
            while not woken.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self._changed(min(left, self._every()), woken):
                    return True
            return False
        except Exception:  # the database went away: look again next time
            log.warning("cannot watch the confirmation queue for now", exc_info=True)
            self.close()
            woken.wait(max(0.0, deadline - time.monotonic()))
            return False

    def close(self) -> None:
        raw, self._raw, self._driver, self._version = self._raw, None, None, None
        if raw is not None:
            try:
                raw.close()
            except Exception:  # already broken: nothing to give back
                log.debug("closing the queue watch's connection failed", exc_info=True)

    def _postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _every(self) -> float:
        return POSTGRES_EVERY if self._postgres() else SQLITE_EVERY

    def _open(self) -> None:
        if self._raw is not None:
            return
        raw = self.engine.raw_connection()
        try:
            if self._postgres():
                driver = raw.driver_connection
                assert driver is not None
                raw.detach()  # autocommit, LISTEN: not a connection for the pool any more
                driver.autocommit = True
                driver.execute(f"LISTEN {QUEUE_CHANNEL}")
                self._driver = driver
            else:
                self._version = _data_version(raw)
        except BaseException:
            raw.close()
            raise
        self._raw = raw

    def _changed(self, seconds: float, woken: threading.Event) -> bool:
        if self._postgres():
            if not list(self._driver.notifies(timeout=seconds, stop_after=1)):
                return False
            list(self._driver.notifies(timeout=0))  # and those with it: one wake for all
            return True
        if woken.wait(seconds):
            return False
        version = _data_version(self._raw)
        changed = version != self._version
        self._version = version
        return changed


def _data_version(raw: Any) -> int:
    cursor = raw.cursor()
    try:
        cursor.execute("PRAGMA data_version")
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()
