"""A Transaction: every SQL primitive of the subscriber list, on one connection.

    Transaction(conn)
      ├─ SubscriberRows     subscribers.py    the rows of the list
      ├─ HistoryRows        history.py        each subscriber's events
      ├─ SuppressionRows    suppressions.py   salted hashes never to mail
      ├─ ConfirmationRows   confirmations.py  signups, confirmation claims, guards
      ├─ ConfirmationBatchRows confirmation_batches.py  a mailer's batch, read and
      │                     recorded in a statement or two
      ├─ FormSignupRows     form_signups.py   a new address's signup, in one statement
      │                                       on PostgreSQL
      ├─ ListStats          stats.py          counts by status and recent events
      ├─ BulkRows           bulk.py           an import's new rows, by executemany
      └─ set_status         here: a status change, with the history, signups
                            and suppression that go with it

:class:`~subscribers.store.Store` opens the connection (a write transaction,
or a read) and commits; the primitives never do, so that service.py,
imports.py and events.py combine them into one atomic change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from subscribers.models import EventKind, Status, Subscriber, SuppressionReason, utcnow
from subscribers.store.bulk import BulkRows
from subscribers.store.confirmation_batches import ConfirmationBatchRows
from subscribers.store.confirmations import ConfirmationRows
from subscribers.store.form_signups import FormSignupRows
from subscribers.store.history import HistoryRows
from subscribers.store.stats import ListStats
from subscribers.store.subscribers import SubscriberRows
from subscribers.store.suppressions import SuppressionRows

if TYPE_CHECKING:
    from sqlalchemy import Connection


class Transaction(
    FormSignupRows,
    SubscriberRows,
    HistoryRows,
    SuppressionRows,
    ConfirmationRows,
    ConfirmationBatchRows,
    ListStats,
    BulkRows,
):
    """The primitives of one transaction; built by :meth:`Store.transaction`
    (or :meth:`Store.reading`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._salt_value = None

    def set_status(
        self,
        subscriber: Subscriber,
        status: Status,
        kind: EventKind | str | None,
        detail: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> Subscriber:
        """Move ``subscriber`` to ``status`` (with the timestamps that go with
        it) and record ``kind``, if given, with ``detail``."""
        now = utcnow()
        changes: dict[str, Any] = {"status": str(status), "updated_at": now, **values}
        if status == Status.UNSUBSCRIBED:
            changes.setdefault("unsubscribed_at", now)
        if status != Status.PENDING:
            changes.setdefault("confirmation_due_at", None)
            # No link mailed before this change may confirm a later signup.
            self.drop_signups(subscriber.id)
        self.update(subscriber.id, **changes)
        if kind is not None:
            self.add_event(
                subscriber.id, kind, {"from": str(subscriber.status), **(detail or {})}, at=now
            )
        if status == Status.COMPLAINED:
            self.suppress(subscriber.email, SuppressionReason.COMPLAINED)
        updated = self.get(subscriber.id)
        assert updated is not None
        return updated
