"""The ``subscribers`` table: one row per address, with its consent record.

    get, get_by_email, get_many     by id, by address (any letter case), by
                                    a batch of email keys; ``lock`` for rows
                                    about to change
    list, iter, count               the list in the order people joined
    insert, insert_many, update     new rows (from :func:`~subscribers.store.rows.new_row`)
                                    and changed columns
    erase                           the row gone, the send ledger scrubbed

These are primitives of a :class:`~subscribers.store.transaction.Transaction`:
they run on its connection and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, delete, func, insert, select, update

from subscribers.models import Consent, Source, Status, Subscriber, email_key, utcnow
from subscribers.schema import send_recipients, subscribers
from subscribers.store.rows import BATCH, new_row, to_subscriber, with_status

if TYPE_CHECKING:
    from sqlalchemy import Connection

# The statements run for every signup, built once (and so compiled once).
_BY_ID = select(subscribers).where(subscribers.c.id == bindparam("subscriber_id"))
_BY_KEY = select(subscribers).where(subscribers.c.email_key == bindparam("key"))
_INSERT = insert(subscribers).returning(subscribers.c.id)
_UPDATE = update(subscribers).where(subscribers.c.id == bindparam("subscriber_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()
_BY_KEY_LOCKED = _BY_KEY.with_for_update()
_BY_KEYS_LOCKED = (
    select(subscribers)
    .where(subscribers.c.email_key.in_(bindparam("keys", expanding=True)))
    .order_by(subscribers.c.email_key)
    .with_for_update()
)
# An import's lookups, batch after batch while the list grows: the keys are
# written into the SQL, so that no plan made when the list was empty (psycopg
# prepares a statement run five times, and PostgreSQL may then keep its
# first plan, a scan of the whole table) serves a list of a hundred thousand.
_BY_KEYS = select(subscribers).where(
    subscribers.c.email_key.in_(bindparam("keys", expanding=True, literal_execute=True))
)


class SubscriberRows:
    """Reading and writing subscriber rows on one connection."""

    conn: Connection

    def get(self, subscriber_id: int, *, lock: bool = False) -> Subscriber | None:
        query = _BY_ID_LOCKED if lock else _BY_ID
        row = self.conn.execute(query, {"subscriber_id": subscriber_id}).first()
        return to_subscriber(row) if row else None

    def get_by_email(self, email: str, *, lock: bool = False) -> Subscriber | None:
        """The subscriber with this address, in any letter case."""
        query = _BY_KEY_LOCKED if lock else _BY_KEY
        row = self.conn.execute(query, {"key": email_key(email.strip())}).first()
        return to_subscriber(row) if row else None

    def get_many(self, keys: Sequence[str], *, lock: bool = False) -> dict[str, Subscriber]:
        """Subscribers by email key, for a batch of keys. With ``lock`` their
        rows are locked in key order, so that two writers locking batches
        that overlap never deadlock."""
        if not keys:
            return {}
        query = _BY_KEYS_LOCKED if lock else _BY_KEYS
        rows = self.conn.execute(query, {"keys": sorted(set(keys))})
        return {row.email_key: to_subscriber(row) for row in rows}

    def list(self, status: Status | None = None, limit: int | None = None) -> list[Subscriber]:
        """Subscribers in the order they joined; for short lists (see ``iter``)."""
        query = with_status(select(subscribers), status).order_by(subscribers.c.id)
        if limit is not None:
            query = query.limit(limit)
        return [to_subscriber(row) for row in self.conn.execute(query)]

    def iter(self, status: Status | None = None, batch: int = BATCH) -> Iterator[Subscriber]:
        """Every subscriber (with ``status``), streamed ``batch`` rows at a time.

        A server-side cursor on PostgreSQL, SQLite's own stepping otherwise:
        memory stays flat however long the list.
        """
        query = with_status(select(subscribers), status).order_by(subscribers.c.id)
        result = self.conn.execution_options(yield_per=batch).execute(query)
        for row in result:
            yield to_subscriber(row)

    def count(self, status: Status | None = None) -> int:
        query = with_status(select(func.count()).select_from(subscribers), status)
        return int(self.conn.execute(query).scalar_one())

    def insert(
        self,
        email: str,
        *,
        name: str = "",
        status: Status,
        source: Source,
        consent: Consent | None = None,
        created_at: dt.datetime | None = None,
        confirmation_due_at: dt.datetime | None = None,
    ) -> Subscriber:
        values = new_row(email, name, status, source, consent, created_at)
        values["confirmation_due_at"] = confirmation_due_at
        subscriber_id = self.conn.execute(_INSERT, values).scalar_one()
        return to_subscriber({"id": subscriber_id, **values})

    def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Insert rows made by :func:`~subscribers.store.rows.new_row`; their
        ids by email key."""
        if not rows:
            return {}
        result = self.conn.execute(
            insert(subscribers).returning(subscribers.c.email_key, subscribers.c.id), rows
        )
        return {key: int(subscriber_id) for key, subscriber_id in result}

    def update(self, subscriber_id: int, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        self.conn.execute(_UPDATE, {"subscriber_id": subscriber_id, **values})

    def erase(self, subscriber_id: int) -> None:
        """Delete a subscriber and (by cascade) their history; scrub the ledger."""
        self.conn.execute(
            update(send_recipients)
            .where(send_recipients.c.subscriber_id == subscriber_id)
            .values(
                email="",
                name="",
                # A provider id can name the reader (an old outbox file name did).
                message_id=None,
                status=case(
                    (send_recipients.c.status.in_(("pending", "failed")), "skipped"),
                    else_=send_recipients.c.status,
                ),
                error=case(
                    (send_recipients.c.status.in_(("pending", "failed")), "erased"),
                    else_=send_recipients.c.error,
                ),
                updated_at=utcnow(),
            )
        )
        self.conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
