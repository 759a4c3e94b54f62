"""The ledger's one writer during a send: group commits of hand stamps,
results and heartbeats, in a thread of its own.

    hand(rows)       stamp rows as handed to the transport; returns once that
                     is committed (with others asked within ``hand_seconds``),
                     with the rows still this worker's: only those may go
                     out (None: the database failed, send none)
    record(outcome)  a result, committed within GROUP_SECONDS
    flush()          wait until everything so far is committed
    wait_writable()  blocks while the database is failing: send nothing then
    close()          commit what is left; returns what could not be committed

Everything queued goes out in one transaction, results first, then hand
stamps, so a thread's result is always committed no later than the stamp of
the next message it sends: after a crash each thread has left undecided at
most the messages it had handed in its last stamp (one, once its calls take
longer than a commit; see :class:`pipeline.send.SendLoop`).

The same thread renews the worker's lease (:attr:`Ledger.heartbeat_every`)
whatever the sending threads are doing, a long transport call included, and
stops renewing it when the process dies.

A commit that fails is tried again (:func:`subscribers.db.retrying`, for the
ledger's ``retry_seconds``); meanwhile :meth:`wait_writable` holds the
sending threads, so that nothing is sent that could not be recorded. Past the
bound the recorder has failed: every hand gets None, results are kept in
memory (:meth:`close` returns them, for a recovery file), and ``on_failure``
is told.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from subscribers.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from subscribers.ledger import Ledger, Outcome

log = logging.getLogger(__name__)

GROUP_SECONDS = 0.02
"""The longest a result waits for its group commit when no stamp is asked for."""
HAND_SECONDS = 0.005
"""The longest a hand stamp waits for others to share its commit, in a paced
send (whose stamps are asked for READY_LEAD ahead of their calls): at a
thousand calls a second, one commit for five stamps instead of one or two."""


@dataclass
class _Hand:
    rows: Sequence[int]
    done: threading.Event = field(default_factory=threading.Event)
    handed: set[int] | None = None


class Recorder:
    """Writes a worker's hand stamps, results and heartbeats to the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        send_id: int,
        *,
        on_failure: Callable[[DatabaseUnavailable], None] | None = None,
        group_seconds: float = GROUP_SECONDS,
        hand_seconds: float = 0.0,
    ) -> None:
        self.ledger = ledger
        self.send_id = send_id
        self.on_failure = on_failure
        self.group_seconds = group_seconds
        self.hand_seconds = hand_seconds
        """How long a hand stamp waits for others to share its commit (0: none)."""
        self.failure: DatabaseUnavailable | None = None
        self.writable = threading.Event()
        """Set while the database takes writes; cleared from its first failure
        until a unit of work succeeds again."""
        self.writable.set()
        self.commits = 0
        self._changed = threading.Condition()
        self._outcomes: list[Outcome] = []
        self._hands: list[_Hand] = []
        self._oldest = 0.0
        self._oldest_hand = 0.0
        self._closing = False
        self._unwritten: list[Outcome] = []
        self._heartbeat_every = ledger.heartbeat_every.total_seconds()
        self._next_heartbeat = time.monotonic() + self._heartbeat_every
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        ledger.health = self._health

    def start(self) -> Recorder:
        self._thread.start()
        return self

    # -- called by the sending threads ---------------------------------------

    def hand(self, rows: Sequence[int]) -> set[int] | None:
        """Stamp ``rows`` handed, committed; the rows still this worker's, or
        None when the database failed (then nothing may be sent)."""
        request = _Hand(rows)
        with self._changed:
            if self._closing and not self._thread.is_alive():
                return None
            if not self._hands:
                self._oldest_hand = time.monotonic()
            self._hands.append(request)
            self._changed.notify()
        request.done.wait()
        return request.handed

    def record(self, outcome: Outcome) -> None:
        with self._changed:
            if not self._outcomes:
                self._oldest = time.monotonic()
                self._changed.notify()
            self._outcomes.append(outcome)

    def flush(self) -> bool:
        """Wait until everything recorded so far is committed; False when the
        database failed."""
        return self.hand(()) is not None

    def wait_writable(self, halt: threading.Event) -> bool:
        """True once the database takes writes; False when it failed for good
        or ``halt`` is set first."""
        while not self.writable.wait(0.1):
            if self.failure is not None or halt.is_set():
                return False
        return self.failure is None

    def close(self) -> list[Outcome]:
        """Commit what is queued and stop; the results that could not be
        committed (the database failed), after one last try."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join()
        else:  # never started: write what was queued here
            self._commit(self._outcomes, self._hands, heartbeat=False)
            self._outcomes, self._hands = [], []
        if self._unwritten:
            try:
                self.ledger.write(self._unwritten)
            except DatabaseUnavailable:
                pass
            else:
                log.info("%d results written at the last try", len(self._unwritten))
                self._unwritten = []
        return list(self._unwritten)

    # -- the writer thread ---------------------------------------------------

    def _health(self, ok: bool) -> None:
        if ok:
            self.writable.set()
        else:
            self.writable.clear()

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    if self._closing or now >= self._next_heartbeat:
                        break
                    wait = self._next_heartbeat - now
                    if self._hands:
                        wait = min(wait, self._oldest_hand + self.hand_seconds - now)
                        if wait <= 0:
                            break
                    if self._outcomes:
                        wait = min(wait, self._oldest + self.group_seconds - now)
                        if wait <= 0:
                            break
                    self._changed.wait(wait)
                outcomes, self._outcomes = self._outcomes, []
                hands, self._hands = self._hands, []
                closing = self._closing
            heartbeat = time.monotonic() >= self._next_heartbeat
            self._commit(outcomes, hands, heartbeat=heartbeat)
            if closing:
                with self._changed:
                    if not self._outcomes and not self._hands:
                        return

    def _commit(self, outcomes: list[Outcome], hands: list[_Hand], *, heartbeat: bool) -> None:
        if heartbeat:
            self._next_heartbeat = time.monotonic() + self._heartbeat_every
        if self.failure is None and (outcomes or hands or heartbeat):
            rows = [row for request in hands for row in request.rows]
            try:
                handed = self.ledger.write(
                    outcomes, hand=rows, heartbeat=self.send_id if heartbeat else None
                )
            except DatabaseUnavailable as exc:
                self._failed(exc)
            except Exception as exc:  # a bug: stop sending, keep the results
                log.exception("writing to the ledger failed")
                self._failed(DatabaseUnavailable(f"{type(exc).__name__}: {exc}"))
            else:
                self.commits += 1
                self.writable.set()
                for request in hands:
                    request.handed = handed.intersection(request.rows)
                    request.done.set()
                return
        # Failed now or before: nothing is handed, the results are kept.
        self._unwritten.extend(outcomes)
        for request in hands:
            request.handed = None
            request.done.set()

    def _failed(self, error: DatabaseUnavailable) -> None:
        if self.failure is None:
            self.failure = error
            self.ledger.give_up.set()
            log.info("%s: sending stopped", error)
            if self.on_failure is not None:
                self.on_failure(error)
