"""The subscriber store: the only SQL in the package (besides the send
ledger's), the same for SQLite and PostgreSQL.

    Store                   opens the database, its transactions and reads
      .transaction()  ──▶ Transaction: the primitives (transaction.py, split
      .reading()            by subject) that service.py, imports.py and
      .retrying(work)       events.py combine into the subscription rules,
                            atomically; retrying runs it again on a race
      .on_its_own()         one statement in autocommit (PostgreSQL): a form
                            signup's, whose lock every signup waits for
      .get, .history, ...   any read primitive, on a connection of its own
      .add, .unsubscribe,   the changes made of several primitives, each in
      .record_event,        one transaction of its own
      .erase
    rows.py                 model ↔ row mapping (new_row, to_subscriber...)

Every write happens in a transaction that also records what changed in the
subscriber's history. Reads that span the whole list (``iter``) stream in
batches through a server-side cursor, in constant memory.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import IntegrityError

from subscribers import db
from subscribers.errors import NotFound, StoreError, SubscriberError, Suppressed, first_line
from subscribers.models import (
    Consent,
    EventKind,
    Source,
    Status,
    Subscriber,
    SuppressionReason,
    normalize_email,
)
from subscribers.store.confirmations import ClaimedConfirmation
from subscribers.store.rows import BATCH
from subscribers.store.transaction import Transaction

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["ClaimedConfirmation", "Conflict", "Store", "Transaction"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class Conflict(StoreError):
    """Two writers raced for the same address; the transaction can be retried."""


def _read(
    primitive: Callable[Concatenate[Transaction, P], T],
) -> Callable[Concatenate[Store, P], T]:
    """A read primitive of :class:`Transaction` as a :class:`Store` method
    that runs it on a connection of its own (taking no write lock)."""

    @functools.wraps(primitive)
    def read(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with store.reading() as tx:
            return primitive(tx, *args, **kwargs)

    return read


class Store:
    """The subscriber list in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, root: Path) -> Store:
        """Connect (migrating if needed) to the database at ``url``."""
        return cls(db.connect(url, root))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic change. A unique-key race (two writers adding the same
        address) surfaces as :class:`Conflict`, and nothing is written."""
        try:
            with db.writing(self.engine) as conn:
                yield Transaction(conn)
        except IntegrityError as exc:
            raise Conflict(f"the database refused a change: {first_line(exc)}") from None

    @contextmanager
    def on_its_own(self) -> Iterator[Transaction]:
        """For a change that is one statement on PostgreSQL: run there in
        autocommit, its own transaction, so that the rows it locks are held
        no longer than it runs (no round trip to COMMIT while others wait
        for them); on SQLite, :meth:`transaction`. A unique-key race is
        :class:`Conflict` either way."""
        if db.is_sqlite(self.engine):
            with self.transaction() as tx:
                yield tx
            return
        try:
            with self.engine.connect() as conn:
                yield Transaction(conn.execution_options(isolation_level="AUTOCOMMIT"))
        except IntegrityError as exc:
            raise Conflict(f"the database refused a change: {first_line(exc)}") from None

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """Reads that go together, on one connection, taking no write lock."""
        with self.engine.connect() as conn:
            yield Transaction(conn)

    def retrying(self, work: Callable[[Transaction], T], attempts: int = 2) -> T:
        """Run ``work`` in a transaction, again if it loses a unique-key race
        (:class:`Conflict`): the next run sees what the other writer added."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as tx:
                    return work(tx)
            except Conflict:
                if attempt == attempts:
                    raise
                log.info("a concurrent writer got there first; trying again")
        raise AssertionError("attempts must be at least 1")

    # -- reading: each a Transaction primitive on a connection of its own -----

    get = _read(Transaction.get)
    get_by_email = _read(Transaction.get_by_email)
    list = _read(Transaction.list)
    count = _read(Transaction.count)
    history = _read(Transaction.history)
    count_events = _read(Transaction.count_events)
    suppression = _read(Transaction.suppression)
    signups = _read(Transaction.signups)
    stats = _read(Transaction.stats)

    def iter(self, status: Status | None = None, batch: int = BATCH) -> Iterator[Subscriber]:
        """Every subscriber (with ``status``), streamed ``batch`` rows at a
        time (:meth:`Transaction.iter`). The connection is held until the
        iterator is exhausted or closed."""
        with self.reading() as tx:
            yield from tx.iter(status, batch)

    def find(self, email: str) -> Subscriber:
        """Like :meth:`get_by_email`, but :class:`NotFound` when missing."""
        subscriber = self.get_by_email(email)
        if subscriber is None:
            raise NotFound(f"{email.strip()}: no such subscriber")
        return subscriber

    # -- writing: the changes made of several primitives ---------------------

    def add(
        self,
        email: str,
        *,
        name: str = "",
        status: Status = Status.ACTIVE,
        source: Source = Source.CLI,
        consent: Consent | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Subscriber:
        """Put a new address on the list.

        Refuses an address already on it, and one that was erased or
        complained if it would be mailed (pending or active): only the
        reader's own confirmed subscription brings such an address back.
        """
        address = normalize_email(email)
        with self.transaction() as tx:
            existing = tx.get_by_email(address)
            if existing is not None:
                raise SubscriberError(f"{address}: already on the list ({existing.status})")
            reason = tx.suppression(address)
            if reason and not status.has_left:
                raise Suppressed(
                    f"{address}: this address was {reason}; only a new subscription "
                    "the reader confirms can bring it back"
                )
            subscriber = tx.insert(
                address, name=name, status=status, source=source, consent=consent
            )
            tx.add_event(
                subscriber.id, EventKind.SUBSCRIBED, {"source": str(source), **(detail or {})}
            )
            if status == Status.COMPLAINED:
                tx.suppress(address, SuppressionReason.COMPLAINED)
            return subscriber

    def unsubscribe(
        self, subscriber_id: int, detail: Mapping[str, Any] | None = None
    ) -> Subscriber | None:
        """Take the subscriber off the list; harmless to repeat. Bounced and
        complained subscribers keep their status (they are not mailed either).
        None if there is no such subscriber (erased, say)."""
        with self.transaction() as tx:
            subscriber = tx.get(subscriber_id, lock=True)
            if subscriber is None or subscriber.status.has_left:
                return subscriber
            return tx.set_status(subscriber, Status.UNSUBSCRIBED, EventKind.UNSUBSCRIBED, detail)

    def record_event(
        self,
        subscriber_id: int,
        kind: EventKind | str,
        *,
        detail: Mapping[str, Any] | None = None,
        send_id: int | None = None,
        external_id: str | None = None,
        at: dt.datetime | None = None,
        status: Status | None = None,
    ) -> bool:
        """Add an event to a subscriber's history, and with ``status`` change
        their status in the same transaction.

        ``external_id`` (a provider's feedback id) makes it idempotent: an
        event already recorded under it changes nothing and returns False.
        A complaint (``status=complained``) also suppresses the address, so
        no import ever brings it back.
        """
        try:
            with self.transaction() as tx:
                if external_id is not None and tx.has_external_id(external_id):
                    return False
                subscriber = tx.get(subscriber_id, lock=True)
                if subscriber is None:
                    raise NotFound(f"subscriber {subscriber_id}: no such subscriber")
                tx.add_event(
                    subscriber_id, kind, detail, send_id=send_id, external_id=external_id, at=at
                )
                if status is not None and status != subscriber.status:
                    tx.set_status(subscriber, status, None)
                elif status == Status.COMPLAINED:
                    tx.suppress(subscriber.email, SuppressionReason.COMPLAINED)
                return True
        except Conflict:
            if external_id is not None:
                return False  # recorded by a concurrent writer
            raise

    def erase(self, email: str) -> bool:
        """GDPR erasure: delete the subscriber and their history, scrub their
        address, name and provider ids from every send's ledger, and keep
        only a salted hash of the address as a suppression. True if there
        was a subscriber. Then :func:`subscribers.db.forget_deleted` so that
        the deleted rows are not left in the database file either."""
        address = normalize_email(email)
        with self.transaction() as tx:
            subscriber = tx.get_by_email(address, lock=True)
            tx.suppress(address, SuppressionReason.ERASED)
            if subscriber is not None:
                tx.erase(subscriber.id)
        if subscriber is not None:
            log.info("erased subscriber %d", subscriber.id)
        return subscriber is not None

    def forget_deleted(self) -> bool:
        """:func:`subscribers.db.forget_deleted` on this store's database."""
        return db.forget_deleted(self.engine)
