"""A form signup from an address new to the list, in as few statements as
the database allows: most signups are, and each statement is a round trip
to PostgreSQL.

    add_pending(address, name, consent, nonce, detail, limit=bucket)
      PostgreSQL: ONE statement, its CTEs counting the hit in the client
                  network's bucket (:data:`subscribers.limits.POSTGRES_HIT`)
                  and, unless it is over the limit, inserting the subscriber
                  (ON CONFLICT DO NOTHING), their signup and their
                  ``subscribed`` event, and telling the mailers that listen
                  (NOTIFY :data:`QUEUE_CHANNEL`, delivered at the commit);
                  :meth:`Store.add_pending` runs it on its own, in
                  autocommit
      SQLite:     the subscriber (ON CONFLICT DO NOTHING RETURNING id), the
                  signup and the event, then the hit (:func:`subscribers.limits.take`)
      either way: the new subscriber's id, or None (and nothing written)
      when the address is on the list already; and what the limit said
    confirmation_queued()   NOTIFY :data:`QUEUE_CHANNEL` (PostgreSQL), for
                            a signup of an address already on the list

Primitives of a :class:`~subscribers.store.transaction.Transaction`; the
rules are in :mod:`subscribers.signup`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from subscribers import limits
from subscribers.models import Consent, EventKind, Source, Status, dump_detail
from subscribers.schema import UTC_DATETIME, subscribers
from subscribers.store.confirmations import ConfirmationRows
from subscribers.store.history import HistoryRows
from subscribers.store.rows import new_row

if TYPE_CHECKING:
    from sqlalchemy import Connection

QUEUE_CHANNEL = "confirmation_queue"
"""What PostgreSQL notifies when a signup queues a confirmation
(:class:`~subscribers.store.queue_watch.QueueWatch` listens)."""

_COLUMNS = tuple(new_row("x@example.com", "", Status.PENDING, Source.FORM))
"""The subscriber's columns a form signup sets (new_row's, the queue's among them)."""
_SIGNUP_COLUMNS = (
    "nonce",
    "name",
    "consent_at",
    "consent_ip",
    "consent_user_agent",
    "consent_text",
    "consent_source",
    "created_at",
)
_POSTGRES_ADD = f"""
WITH hit AS (__HIT__),
new AS (
    INSERT INTO subscribers ({", ".join(_COLUMNS)})
    SELECT {", ".join(f"%({column})s" for column in _COLUMNS)} FROM hit
    ON CONFLICT (email_key) DO NOTHING
    RETURNING id
), signup AS (
    INSERT INTO signups (subscriber_id, {", ".join(_SIGNUP_COLUMNS)}, mailed_at)
    SELECT id, {", ".join(f"%(s_{column})s" for column in _SIGNUP_COLUMNS)}, NULL FROM new
), event AS (
    INSERT INTO subscriber_events (subscriber_id, kind, at, detail)
    SELECT id, %(e_kind)s, %(e_at)s, %(e_detail)s FROM new
), notified AS (
    SELECT pg_notify('{QUEUE_CHANNEL}', '') FROM new
)
SELECT (SELECT hits FROM hit), (SELECT id FROM new), (SELECT count(*) FROM notified)
"""  # noqa: S608 - the names are this module's own; every value is a parameter
"""The signup of a new address, in one statement: the hit in the client
network's bucket (``__HIT__``: :data:`subscribers.limits.POSTGRES_HIT`, or a row
when there is no limit) and, if it is allowed, the rest."""
_POSTGRES_ADD_UNLIMITED = _POSTGRES_ADD.replace("__HIT__", "SELECT 1 AS hits")
_POSTGRES_ADD_LIMITED = _POSTGRES_ADD.replace("__HIT__", limits.POSTGRES_HIT)
_MARKS = ", ".join("?" * len(_COLUMNS))
_SQLITE_ADD = (
    f"INSERT INTO subscribers ({', '.join(_COLUMNS)}) VALUES ({_MARKS}) "  # noqa: S608 - as above
    "ON CONFLICT (email_key) DO NOTHING RETURNING id"
)
_SQLITE_SIGNUP = (
    f"INSERT INTO signups (subscriber_id, {', '.join(_SIGNUP_COLUMNS)}, mailed_at) "  # noqa: S608
    f"VALUES (?, {', '.join('?' * len(_SIGNUP_COLUMNS))}, NULL)"
)
_SQLITE_EVENT = (
    "INSERT INTO subscriber_events (subscriber_id, kind, at, detail) VALUES (?, ?, ?, ?)"
)
"""SQLite's statements, in sqlite3's placeholders: run as they are, each
costs a fifth of what SQLAlchemy's own statement would (the signup is most
of what a signup request costs)."""
_TIMESTAMPS = {column for column, kind in subscribers.c.items() if kind.type is UTC_DATETIME}
_NOTIFY = text(f"NOTIFY {QUEUE_CHANNEL}")


class FormSignupRows(HistoryRows, ConfirmationRows):
    """Form signups of new addresses on one connection."""

    def add_pending(
        self,
        address: str,
        *,
        name: str,
        consent: Consent,
        nonce: str,
        detail: Mapping[str, Any],
        limit: limits.Bucket | None = None,
    ) -> tuple[int | None, limits.Taken]:
        """A new pending subscriber at ``address`` (normalized), their
        confirmation due at once, with the signup (``nonce``, ``name``,
        ``consent``) and the ``subscribed`` event (``detail``); their id,
        or None, with none of that written, if the address is on the list.
        And a hit counted in ``limit`` (at ``consent.at``), whatever the
        address. Over the limit (``Taken.denied``), nothing is written on
        PostgreSQL; on SQLite the caller rolls back."""
        assert consent.at is not None
        row = new_row(address, name, Status.PENDING, Source.FORM, consent)
        row["confirmation_due_at"] = consent.at
        if self.conn.dialect.name == "postgresql":
            return self._add_pending_postgres(row, name, consent, nonce, detail, limit)
        write = _sqlite_timestamps(self.conn)
        values = tuple(write(row[c]) if c in _TIMESTAMPS else row[c] for c in _COLUMNS)
        found = self.conn.exec_driver_sql(_SQLITE_ADD, values).scalar()
        subscriber_id = None if found is None else int(found)
        if subscriber_id is not None:
            at = write(consent.at)
            signup = (
                nonce,
                name,
                at,
                consent.ip,
                consent.user_agent,
                consent.text,
                consent.source,
                at,
            )
            self.conn.exec_driver_sql(_SQLITE_SIGNUP, (subscriber_id, *signup))
            event = (subscriber_id, str(EventKind.SUBSCRIBED), at, dump_detail(detail))
            self.conn.exec_driver_sql(_SQLITE_EVENT, event)
        taken = limits.Taken(()) if limit is None else self.take_limits([limit], consent.at)
        return subscriber_id, taken

    def _add_pending_postgres(
        self,
        row: dict[str, Any],
        name: str,
        consent: Consent,
        nonce: str,
        detail: Mapping[str, Any],
        limit: limits.Bucket | None,
    ) -> tuple[int | None, limits.Taken]:
        assert consent.at is not None
        params = {
            **row,
            "s_nonce": nonce,
            "s_name": name,
            "s_consent_at": consent.at,
            "s_consent_ip": consent.ip,
            "s_consent_user_agent": consent.user_agent,
            "s_consent_text": consent.text,
            "s_consent_source": consent.source,
            "s_created_at": consent.at,
            "e_kind": str(EventKind.SUBSCRIBED),
            "e_at": consent.at,
            "e_detail": dump_detail(detail),
        }
        if limit is None:
            statement = _POSTGRES_ADD_UNLIMITED
        else:
            statement = _POSTGRES_ADD_LIMITED
            params.update(limits.hit_params(self.conn, limit, consent.at))
        hits, subscriber_id, _ = self.conn.exec_driver_sql(statement, params).one()
        taken = limits.Taken(()) if limit is None else limits.judge(limit, consent.at, hits)
        return (None if subscriber_id is None else int(subscriber_id)), taken

    def confirmation_queued(self) -> None:
        """Tell the mailers that listen that a confirmation is due (on
        PostgreSQL; an SQLite mailer sees the file change)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(_NOTIFY)


def _sqlite_timestamps(conn: Connection) -> Callable[[dt.datetime | None], Any]:
    """How SQLAlchemy writes a timestamp to this SQLite database (as text),
    so that the rows read back like every other."""
    process = UTC_DATETIME.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert process is not None
    return process
