"""A confirmation mailer's batch after the claim: the messages it sends, their
results, and recording all of them in one transaction.

    Outgoing (a message to send) ──sent──> Result(error=None)
                                 ──failed─> Result(error="...")
                                 ──stopped before it was tried──> untried
    Batch: the results as they come, recorded by :func:`record` together
           when the batch is done, or after RECORD_EVERY seconds of sending
           (a mailer that dies sends again that much at most), with the
           lease moved on every quarter of it (a slow batch keeps its claims)
    record(tx, results, untried)   one transaction, a few statements:
      sent ──────> confirmation_sent_at, the queue left (kept when a newer
                   signup came in meanwhile: its own message is due)
      failed ────> the limits given back, due again after retry_delay, given
                   up after MAX_ATTEMPTS tries (only while still pending)
      untried ───> given back (due at once, the attempt not counted), its
                   limits and the signup's mailed_at as they were

The rules of which messages go are in :mod:`subscribers.confirmation_queue`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from subscribers.limits import Taken
from subscribers.models import EventKind, Signup, Status, Subscriber, dump_detail, utcnow

if TYPE_CHECKING:
    from subscribers.store import Store, Transaction

log = logging.getLogger(__name__)

RETRY_AFTER = dt.timedelta(minutes=1)
"""The wait after a first failed try; doubled after each one, up to RETRY_AT_MOST."""
RETRY_AT_MOST = dt.timedelta(hours=1)
MAX_ATTEMPTS = 10
"""Tries at one signup's confirmation (about four hours of them) before giving up."""
RECORD_EVERY = 1.0
"""Seconds of sending after which a batch records what it has sent so far
(a batch of a fast transport is recorded once, at its end)."""


def retry_delay(attempt: int) -> dt.timedelta:
    """How long to wait after failed try number ``attempt`` (1, 2, ...)."""
    delay: dt.timedelta = RETRY_AFTER * 2 ** max(attempt - 1, 0)
    return min(delay, RETRY_AT_MOST)


@dataclass(frozen=True)
class Outgoing:
    """A confirmation message to send: for ``subscriber``, try number
    ``attempt`` (0: sent by hand), carrying ``signup``'s link, counted in
    the limits as ``taken``; prepared ``at`` (its time of sending, as
    recorded) and the signup's ``mailed_at`` before then."""

    subscriber: Subscriber
    attempt: int
    signup: Signup
    taken: Taken
    at: dt.datetime
    mailed_before: dt.datetime | None


@dataclass(frozen=True)
class Result:
    """How sending ``item`` went, known ``at``: ``error`` is None if it was sent."""

    item: Outgoing
    error: str | None
    at: dt.datetime


def event_row(
    subscriber_id: int, kind: EventKind, detail: Mapping[str, Any], at: dt.datetime
) -> dict[str, object]:
    """A row of :meth:`~subscribers.store.Transaction.add_events`."""
    return {
        "subscriber_id": subscriber_id,
        "kind": str(kind),
        "at": at,
        "detail": dump_detail(detail),
    }


def gave_up(
    subscriber_id: int, attempts: int, error: str, at: dt.datetime
) -> tuple[dict[str, object], dict[str, object]]:
    """The queue change and the history event of giving up a confirmation."""
    log.error(
        "giving up mailing a confirmation to subscriber %d after %d attempts: %s",
        subscriber_id,
        attempts,
        error,
    )
    return (
        _unqueued(subscriber_id),
        event_row(
            subscriber_id,
            EventKind.CONFIRMATION_GIVEN_UP,
            {"attempts": attempts, "error": error},
            at,
        ),
    )


def record(
    tx: Transaction, results: Sequence[Result], untried: Sequence[Outgoing], *, worker: str | None
) -> None:
    """Record ``results`` and give back ``untried`` (claimed by ``worker``),
    in ``tx``: see the module's docstring."""
    tx.by_index()
    states = tx.queue_states(result.item.subscriber.id for result in results)
    changes: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    give_back: list[tuple[str, int]] = []
    for result in results:
        item = result.item
        subscriber_id = item.subscriber.id
        state = states.get(subscriber_id)
        if result.error is None:
            if state is None:  # erased meanwhile
                continue
            change: dict[str, object] = {
                "subscriber_id": subscriber_id,
                "confirmation_sent_at": item.at,
            }
            # A newer signup while this one was being sent stays queued.
            if state.latest_signup in (None, item.signup.id):
                change.update(_unqueued(subscriber_id))
            changes.append(change)
            events.append(event_row(subscriber_id, EventKind.CONFIRMATION_SENT, {}, item.at))
            continue
        # Nothing was sent: the limits it counted against are given back.
        give_back.extend(item.taken.rows)
        if state is None or state.status != Status.PENDING:
            continue
        if item.attempt >= MAX_ATTEMPTS:
            change, event = gave_up(subscriber_id, item.attempt, result.error, result.at)
        else:
            retry_at = result.at + retry_delay(item.attempt)
            change = {**_unqueued(subscriber_id), "confirmation_due_at": retry_at}
            detail = {
                "attempt": item.attempt,
                "error": result.error,
                "retry_at": retry_at.isoformat(),
            }
            event = event_row(subscriber_id, EventKind.CONFIRMATION_FAILED, detail, result.at)
        changes.append(change)
        events.append(event)
    tx.update_many(changes)
    tx.record_events(events)
    if untried and worker is not None:
        tx.release_confirmations(worker, [item.subscriber.id for item in untried], utcnow())
        give_back.extend(row for item in untried for row in item.taken.rows)
        tx.mark_signups_mailed([(item.signup.id, item.mailed_before) for item in untried])
    tx.give_back_limits(give_back)


def _unqueued(subscriber_id: int) -> dict[str, object]:
    return {
        "subscriber_id": subscriber_id,
        "confirmation_due_at": None,
        "confirmation_claimed_by": None,
    }


class Batch:
    """The results of one batch as they come in (from several threads),
    recorded together by :meth:`finish`, or sooner by :meth:`renew`: every
    :data:`RECORD_EVERY` seconds of sending, so that a mailer that dies
    sends again no more than that many seconds' worth; and the lease on the
    batch's claims, moved on every quarter of it, so that a slow batch keeps
    them. Either is one transaction."""

    def __init__(self, store: Store, worker: str, length: dt.timedelta) -> None:
        self.store = store
        self.worker = worker
        self.length = length
        self._results: list[Result] = []
        self._untried: list[Outgoing] = []
        self._renewed = self._recorded = time.monotonic()
        self._lock = threading.Lock()

    def done(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)

    def untried(self, item: Outgoing) -> None:
        with self._lock:
            self._untried.append(item)

    def renew(self) -> None:
        """Record the results so far once :data:`RECORD_EVERY` seconds have
        passed since the last time, and move the lease's end on once a
        quarter of it has, in one transaction."""
        with self._lock:
            now = time.monotonic()
            extend = now - self._renewed >= self.length.total_seconds() / 4
            if not extend and (now - self._recorded < RECORD_EVERY or not self._results):
                return
            self._recorded = now
            if extend:
                self._renewed = now
            results, self._results = self._results, []
        try:
            with self.store.transaction() as tx:
                record(tx, results, [], worker=self.worker)
                if extend:
                    tx.extend_confirmations(self.worker, utcnow() + self.length)
        except Exception:  # the lease runs out, and another mailer may send them too
            log.exception("could not record the confirmations sent so far")
            with self._lock:
                self._results[:0] = results  # for finish() to record

    def finish(self) -> None:
        """Record every result not yet recorded, and give back the claims
        not tried, in one transaction."""
        with self._lock:
            results, self._results = self._results, []
            untried, self._untried = self._untried, []
        if results or untried:
            with self.store.transaction() as tx:
                record(tx, results, untried, worker=self.worker)
