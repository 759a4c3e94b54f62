"""A confirmation mailer's batch in the database: what it reads of the
claims it holds and what it writes back, each one statement for the whole
batch.

    claimed batch ──reported_mailboxes──▶ the mailboxes that bounced or complained
                  ──take_limits_each────▶ a Taken per message (subscribers.limits)
                  ──latest_signups──────▶ the signup each message carries
                  ──mark_signups_mailed─▶ mailed_at, per signup (or back as it was)
    results       ──queue_states────────▶ status and newest signup, rows locked
                  ──update_many─────────▶ the queue columns per subscriber
                  ──record_events───────▶ sent, failed, given up

Primitives of a :class:`~subscribers.store.transaction.Transaction`; the
rules that combine them are in :mod:`subscribers.confirmation_queue`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, func, insert, select, text, update

from subscribers import limits
from subscribers.db.lists import one_of
from subscribers.models import EventKind, Signup, Status, utcnow
from subscribers.schema import signups, subscriber_events, subscribers
from subscribers.store.rows import to_signup

if TYPE_CHECKING:
    from sqlalchemy import Connection

_REPORTED_KINDS = (str(EventKind.BOUNCED), str(EventKind.COMPLAINED))
_BY_INDEX = text("SET LOCAL enable_seqscan = off")


class _Statements(NamedTuple):
    """This module's statements for one database."""

    reported_mailboxes: Any
    latest_signups: Any
    queue_states: Any
    mailed: Any
    update: Any
    events: str | None
    """PostgreSQL's insert of many events at once; None: SQLAlchemy's."""


@functools.cache
def _statements(postgres: bool) -> _Statements:
    """The statements, their lists of ids or mailboxes bound as one array
    on PostgreSQL (``= ANY(:ids)``): one statement text, parsed and planned
    once (psycopg prepares it), whatever the size of the batch. SQLite takes
    a list as so many parameters."""

    def among(column: Any, name: str) -> Any:
        return one_of(column, name, postgres)

    return _Statements(
        reported_mailboxes=select(subscribers.c.mailbox_key)
        .distinct()
        .where(among(subscribers.c.mailbox_key, "mailboxes"))
        .where(
            subscribers.c.status.in_(_REPORTED_KINDS)
            | select(subscriber_events.c.id)
            .where(subscriber_events.c.subscriber_id == subscribers.c.id)
            .where(subscriber_events.c.kind.in_(_REPORTED_KINDS))
            .exists()
        ),
        latest_signups=select(signups).where(
            signups.c.id.in_(
                select(func.max(signups.c.id))
                .where(among(signups.c.subscriber_id, "ids"))
                .group_by(signups.c.subscriber_id)
            )
        ),
        queue_states=select(
            subscribers.c.id,
            subscribers.c.status,
            select(func.max(signups.c.id))
            .where(signups.c.subscriber_id == subscribers.c.id)
            .scalar_subquery()
            .label("latest_signup"),
        )
        .where(among(subscribers.c.id, "ids"))
        .order_by(subscribers.c.id)
        .with_for_update(of=subscribers),
        mailed=update(signups)
        .where(among(signups.c.id, "ids"))
        .values(mailed_at=bindparam("mailed_at")),
        update=update(subscribers).where(among(subscribers.c.id, "ids")),
        events=(
            "INSERT INTO subscriber_events (subscriber_id, kind, at, detail) "
            "SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[], %s::text[])"
        )
        if postgres
        else None,
    )


def among(conn: Connection, column: Any, name: str) -> Any:
    """``column IN`` the list bound as ``name``, as :func:`_statements` binds
    it for ``conn``'s database."""
    return one_of(column, name, conn.dialect.name == "postgresql")


class QueueState(NamedTuple):
    """A subscriber's row as a mailer records a result: still there, with
    this status, and the id of their newest signup (None: they have none)."""

    status: Status
    latest_signup: int | None


class ConfirmationBatchRows:
    """A batch of confirmation messages on one connection."""

    conn: Connection

    @property
    def _sql(self) -> _Statements:
        return _statements(self.conn.dialect.name == "postgresql")

    def by_index(self) -> None:
        """Have PostgreSQL look a batch's rows up by their indexes for the
        rest of the transaction. Every lookup of a batch is by key or id;
        but a table that grew since its last statistics (a young list, a
        burst of signups) looks small enough to PostgreSQL to be scanned
        whole, once per statement, which costs milliseconds a batch."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(_BY_INDEX)

    def reported_mailboxes(self, mailboxes: Iterable[str]) -> set[str]:
        """Those of ``mailboxes`` an address of which complained or bounced
        permanently, as its status or history says
        (:meth:`~subscribers.store.confirmations.ConfirmationRows.mailbox_was_reported`
        for many)."""
        wanted = sorted(set(mailboxes))
        if not wanted:
            return set()
        return set(self.conn.execute(self._sql.reported_mailboxes, {"mailboxes": wanted}).scalars())

    def take_limits_each(
        self, bucket_sets: Sequence[Sequence[limits.Bucket]], now: dt.datetime
    ) -> list[limits.Taken]:
        """A take of each set of buckets in turn (:func:`subscribers.limits.take_each`)."""
        return limits.take_each(self.conn, bucket_sets, now)

    def latest_signups(self, subscriber_ids: Iterable[int]) -> dict[int, Signup]:
        """Each subscriber's newest signup, by subscriber id (none for those who have none)."""
        ids = sorted(set(subscriber_ids))
        if not ids:
            return {}
        rows = self.conn.execute(self._sql.latest_signups, {"ids": ids})
        return {signup.subscriber_id: signup for signup in map(to_signup, rows)}

    def mark_signups_mailed(self, mailed: Sequence[tuple[int, dt.datetime | None]]) -> None:
        """Set each ``(signup id, mailed_at)``: when its link was mailed, or
        (given back untried) what it was before; one statement for the
        signups of one moment."""
        by_moment: dict[dt.datetime | None, list[int]] = {}
        for signup_id, at in mailed:
            by_moment.setdefault(at, []).append(signup_id)
        for at, ids in by_moment.items():
            self.conn.execute(self._sql.mailed, {"ids": sorted(ids), "mailed_at": at})

    def queue_states(self, subscriber_ids: Iterable[int]) -> dict[int, QueueState]:
        """The :class:`QueueState` of each subscriber still there, their rows
        locked (in id order) until the transaction ends."""
        ids = sorted(set(subscriber_ids))
        if not ids:
            return {}
        rows = self.conn.execute(self._sql.queue_states, {"ids": ids})
        return {
            int(row.id): QueueState(
                Status(row.status), None if row.latest_signup is None else int(row.latest_signup)
            )
            for row in rows
        }

    def update_many(self, changes: Sequence[Mapping[str, Any]]) -> None:
        """Change columns of many subscribers: each mapping has their
        ``subscriber_id`` and the new values (``updated_at`` is now unless
        given); one statement for all those changed alike (a batch's sent
        messages, say)."""
        now = utcnow()
        alike: dict[tuple[tuple[str, Any], ...], list[int]] = {}
        for change in changes:
            values = {"updated_at": now, **change}
            subscriber_id = values.pop("subscriber_id")
            alike.setdefault(tuple(sorted(values.items())), []).append(subscriber_id)
        for columns, ids in alike.items():
            self.conn.execute(self._sql.update.values(dict(columns)), {"ids": sorted(ids)})

    def record_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Add events to histories: mappings of ``subscriber_id``, ``kind``,
        ``at`` and ``detail`` (JSON text); on PostgreSQL in one statement of
        arrays, whatever their number."""
        if not events:
            return
        if self._sql.events is None:
            self.conn.execute(insert(subscriber_events), list(events))
            return
        columns = ("subscriber_id", "kind", "at", "detail")
        arrays = tuple([event[column] for event in events] for column in columns)
        self.conn.exec_driver_sql(self._sql.events, arrays)
