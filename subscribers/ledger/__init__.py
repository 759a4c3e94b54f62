"""The send ledger: one row per send, one per recipient, and where each stands.

    pending ──claim──▶ sending ──hand──▶ sending, handed ──▶ sent    (provider's id)
       ▲                  │                    │         ──▶ failed  (retried next run)
       └──── release ─────┴────── release ─────┘         ──▶ skipped (left the list)

A send begins with a snapshot of the active subscribers; workers claim
small batches of its rows, each claim a lease kept alive by a heartbeat;
before a message goes to the transport its row is stamped ``handed_at``,
and its result is recorded in group commits. A later run takes back what
dead workers left, settling the ambiguous rows from the transport's
records where it can.

The package, by job (all the SQL for ``sends`` and ``send_recipients``):

    records.py   SendRecord, Claimed, Outcome, Resumed: the plain data
    workers.py   worker ids (host:pid:nonce), leases, who is presumed dead
    base.py      what the parts share: engine, worker, retried units of work
    sends.py     Sends: start a send with its snapshot, find it, set its state
    outcomes.py  Outcomes: results, handed_at and heartbeats in group commits
    claims.py    Claims: claim rows; take back and resume dead workers' rows
    reports.py   Reports: Totals, SendStatus, who a run would send to; the
                 lookups by message id and by issue
    slots.py     SendSlots: the sending budget all senders of an account
                 share, slots booked on one timeline (``send_budget``)

:class:`Ledger` is these parts together, for one worker: the object every
caller holds. The parts are classes over one shared state (the worker's id,
lease, heartbeat and retry policy), so that a method of one (a claim that
records the results it is handed) calls another without passing it along.
"""

from __future__ import annotations

from subscribers.ledger.claims import AMBIGUOUS_RESENT, AMBIGUOUS_SKIPPED, Claims
from subscribers.ledger.records import (
    MESSAGE_ID_LENGTH,
    ROW_STATES,
    Ambiguous,
    Claimed,
    Outcome,
    Resumed,
    RowState,
    SendRecord,
    SendState,
    Settle,
)
from subscribers.ledger.reports import (
    FEEDBACK_KINDS,
    Failure,
    Reports,
    SendStatus,
    SentMessage,
    Totals,
    sends_for_messages,
    sent_issue_times,
)
from subscribers.ledger.slots import Booking, SendSlots
from subscribers.ledger.workers import HEARTBEAT, LEASE, new_worker_id

__all__ = [
    "AMBIGUOUS_RESENT",
    "AMBIGUOUS_SKIPPED",
    "FEEDBACK_KINDS",
    "HEARTBEAT",
    "LEASE",
    "MESSAGE_ID_LENGTH",
    "ROW_STATES",
    "Ambiguous",
    "Booking",
    "Claimed",
    "Failure",
    "Ledger",
    "Outcome",
    "Resumed",
    "RowState",
    "SendRecord",
    "SendSlots",
    "SendState",
    "SendStatus",
    "SentMessage",
    "Settle",
    "Totals",
    "new_worker_id",
    "sends_for_messages",
    "sent_issue_times",
]


class Ledger(Claims, Reports):
    """The sends and their recipients in one database, for one worker.

    ``Ledger(engine, worker=None, *, lease=LEASE, retry_seconds=0.0)``:
    without ``worker``, a new id for this process (:func:`new_worker_id`).
    Every method is one unit of work, tried again for ``retry_seconds``
    while the database fails in a way that may pass; then
    :class:`~subscribers.errors.DatabaseUnavailable`.
    """
