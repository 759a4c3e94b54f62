"""Many new rows at once, as plain tuples: an import's subscribers and
their events, each statement one driver ``executemany``.

    NewSubscriber               a new subscriber's row: its fields are the
                                columns it sets, in order
    NewEvent                    an event of a subscriber known by id
    JoinedEvent                 an event of a subscriber known by email key:
                                one inserted just before, in the same
                                transaction, whose id the statement looks up
    insert_subscribers(rows)    executemany
    insert_events(rows)         executemany (each NewEvent or JoinedEvent)

SQLAlchemy Core's ``insert()`` over a list of dicts (with RETURNING, as
``insert_many`` does) spends more per row on parameter processing than
the database spends on the row (bench/bench_import.py). Here each row
reaches the driver as it is; only the timestamps are written as the
dialect writes them (SQLite keeps them as text), so they read back like
every other. An event finds its new subscriber's id inside the
INSERT (by the unique email key), so no ids travel back to Python.

The statements still go through SQLAlchemy (``exec_driver_sql``): a
unique-key race is an ``IntegrityError`` as anywhere else, which
:meth:`Store.transaction` turns into ``Conflict``. Their SQL is written
here, from this module's own names, in the driver's placeholders.

Primitives of a :class:`~subscribers.store.transaction.Transaction`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from subscribers.errors import StoreError
from subscribers.schema import UTC_DATETIME

if TYPE_CHECKING:
    from sqlalchemy import Connection, Dialect


class NewSubscriber(NamedTuple):
    """A new subscriber's row, as :func:`~subscribers.store.rows.new_row`
    makes it; the columns left out start NULL (or at their defaults)."""

    email: str
    email_key: str
    mailbox_key: str
    name: str
    status: str
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None
    consent_at: dt.datetime | None
    consent_ip: str | None
    consent_user_agent: str | None
    consent_text: str | None
    consent_source: str | None
    confirmed_ip: str | None


class NewEvent(NamedTuple):
    """A row of a subscriber's history; ``detail`` is JSON text (``dump_detail``)."""

    subscriber_id: int
    kind: str
    at: dt.datetime
    detail: str


class JoinedEvent(NamedTuple):
    """:class:`NewEvent` of the subscriber with ``email_key``."""

    email_key: str
    kind: str
    at: dt.datetime
    detail: str


BULK_CACHE_KB = 64 * 1024
"""SQLite's page cache for a connection that inserts in bulk (its default
is 2 MB): most of what a list of a hundred thousand fills (about 60 MB
with its history) stays in memory, where inserting addresses in no order
into its indexes would read and write pages all the time. At most that
much memory, and only while an import runs."""

_STATEMENTS = {
    NewSubscriber: (
        f"INSERT INTO subscribers ({', '.join(NewSubscriber._fields)}) "  # noqa: S608 - our names
        f"VALUES ({', '.join('?' * len(NewSubscriber._fields))})"
    ),
    NewEvent: "INSERT INTO subscriber_events (subscriber_id, kind, at, detail) VALUES (?, ?, ?, ?)",
    JoinedEvent: (
        "INSERT INTO subscriber_events (subscriber_id, kind, at, detail) "
        "SELECT id, ?, ?, ? FROM subscribers WHERE email_key = ?"
    ),
}
"""The statements, in qmark style (sqlite3); :func:`_statement` makes the
``%s`` of psycopg."""


class BulkRows:
    """Inserting many new rows on one connection."""

    conn: Connection

    def insert_subscribers(self, rows: Sequence[NewSubscriber]) -> None:
        """Insert new subscribers."""
        if not rows:
            return
        self._bulk_cache()
        values: Sequence[tuple[Any, ...]] = rows
        write = _timestamp_writer(self.conn.dialect)
        if write is not None:
            values = [
                (*row[:6], write(row[6]), write(row[7]), write(row[8]), write(row[9]),
                 write(row[10]), *row[11:])
                for row in rows
            ]  # fmt: skip
        self.conn.exec_driver_sql(_statement(self.conn.dialect, NewSubscriber), values)

    def insert_events(self, rows: Sequence[NewEvent] | Sequence[JoinedEvent]) -> None:
        """Insert events into subscribers' histories, all of one kind of tuple."""
        if not rows:
            return
        write = _timestamp_writer(self.conn.dialect) or _as_is
        values: list[tuple[Any, ...]]
        if isinstance(rows[0], JoinedEvent):
            values = [(row[1], write(row[2]), row[3], row[0]) for row in rows]
        else:
            values = [(row[0], row[1], write(row[2]), row[3]) for row in rows]
        result = self.conn.exec_driver_sql(_statement(self.conn.dialect, type(rows[0])), values)
        if result.rowcount != len(values) and self.conn.dialect.supports_sane_multi_rowcount:
            # A JoinedEvent whose subscriber is not there: the caller's bug.
            raise StoreError(f"{len(values) - result.rowcount} events found no subscriber")

    def _bulk_cache(self) -> None:
        """On SQLite, a page cache of :data:`BULK_CACHE_KB` for this
        connection, from its first bulk insert on."""
        if self.conn.dialect.name == "sqlite" and not self.conn.info.get("bulk_cache"):
            self.conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KB}")
            self.conn.info["bulk_cache"] = True


def _statement(dialect: Dialect, shape: type) -> str:
    statement = _STATEMENTS[shape]
    if dialect.paramstyle == "qmark":
        return statement
    if dialect.paramstyle in ("format", "pyformat"):
        return statement.replace("?", "%s")  # no "?" or "%" in the SQL otherwise
    raise NotImplementedError(f"no bulk insert for the {dialect.paramstyle} paramstyle")


def _as_is(value: Any) -> Any:
    return value


def _timestamp_writer(dialect: Dialect) -> Callable[[Any], Any] | None:
    """How the dialect writes a timestamp, remembering what it wrote (the
    rows of a batch share their ``now``, and an imported row's consent time
    is often its creation time); None where the driver takes a datetime as
    it is (psycopg).

    SQLite's text, ``2026-01-31 09:00:00.000000``, is what
    ``datetime.isoformat`` writes up to the offset, in C at half the cost of
    SQLAlchemy's processor: that is used when the two agree on a probe whose
    every field differs, the processor otherwise."""
    processor = UTC_DATETIME.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return None
    process: Callable[[Any], Any] = processor
    if processor(_PROBE) == _iso_text(_PROBE):
        process = _iso_text
    written: dict[Any, Any] = {}

    def write(value: dt.datetime | None) -> Any:
        if value is None:
            return None
        # By zone too: the same instant in another zone is other text.
        key = (value, value.tzinfo)
        text = written.get(key)
        if text is None:
            text = written[key] = process(value)
        return text

    return write


_PROBE = dt.datetime(1987, 6, 5, 4, 3, 2, 10, tzinfo=dt.UTC)


def _iso_text(value: dt.datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]
