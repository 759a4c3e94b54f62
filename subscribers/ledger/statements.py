"""The statements a send runs for every few recipients, built once per dialect.

    claim(postgres)       pending rows of a send → "sending", this worker's
    leavers(postgres)     which of the claimed subscribers left the list
    mark_sent(postgres)   sent rows with their provider ids and times
    hand(postgres)        rows stamped handed, of those still this worker's
    sent_and_hand()       PostgreSQL: both in one statement, for a commit
                          of nothing else (a group commit's usual content)

A send runs these a few hundred times a second. Built per call, a statement
costs more to construct and to key for SQLAlchemy's compiled cache than to
run; built once, with every value a parameter, it is looked up by a key
already made, and psycopg prepares it on the server after a few runs.

Lists of ids are one parameter on PostgreSQL: an array, matched with ``=
ANY`` or joined with ``unnest``, so one statement costs the client and the
server about the same for one row as for fifty. SQLite expands a list
parameter into ``IN (...)`` and takes the sent rows one statement each.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from subscribers.db.lists import one_of
from subscribers.schema import send_recipients as sr
from subscribers.schema import subscribers


def held_by(worker: Any) -> tuple[Any, ...]:
    """Conditions for a row ``worker`` (a value or a parameter) holds in ``sending``."""
    return (sr.c.status == "sending", sr.c.claimed_by == worker)


@cache
def claim() -> Any:
    """Up to ``up_to`` pending rows of send ``of_send`` claimed by
    ``by_worker`` at ``at_now`` (skipping rows another claim has locked);
    returns them. (No parameter is named after a column: SQLAlchemy keeps
    those names for the SET clause.)"""
    from sqlalchemy import bindparam, select, update

    picked = (
        select(sr.c.id)
        .where(sr.c.send_id == bindparam("of_send"), sr.c.status == "pending")
        .limit(bindparam("up_to"))
        .with_for_update(skip_locked=True)
    )
    return (
        update(sr)
        .where(sr.c.id.in_(picked.scalar_subquery()))
        .values(
            status="sending",
            claimed_by=bindparam("by_worker"),
            attempts=sr.c.attempts + 1,
            handed_at=None,
            updated_at=bindparam("at_now"),
        )
        .returning(sr.c.id, sr.c.subscriber_id, sr.c.email, sr.c.name, sr.c.attempts)
    )


@cache
def leavers(postgres: bool) -> Any:
    """Of the subscribers in ``ids``, those no longer active, with their status."""
    from sqlalchemy import select

    return select(subscribers.c.id, subscribers.c.status).where(
        one_of(subscribers.c.id, "ids", postgres), subscribers.c.status != "active"
    )


@cache
def mark_sent(postgres: bool) -> Any:
    """Rows sent, at ``at_now``. PostgreSQL: parameters ``sent_ids``,
    ``sent_message_ids`` and ``sent_ats``, arrays in step; SQLite: one set
    of ``row_id``, ``message_id`` and ``at`` per row (executemany)."""
    from sqlalchemy import BigInteger, DateTime, String, bindparam, func, update
    from sqlalchemy.dialects.postgresql import ARRAY

    values: dict[str, Any] = {"status": "sent", "updated_at": bindparam("at_now"), "error": None}
    if not postgres:
        return (
            update(sr)
            .where(sr.c.id == bindparam("row_id"))
            .values(message_id=bindparam("message_id"), sent_at=bindparam("at"), **values)
        )
    given = (
        func.unnest(
            bindparam("sent_ids", type_=ARRAY(BigInteger)),
            bindparam("sent_message_ids", type_=ARRAY(String)),
            bindparam("sent_ats", type_=ARRAY(DateTime(timezone=True))),
        )
        .table_valued("id", "message_id", "at")
        .render_derived(name="v")
    )
    return (
        update(sr)
        .where(sr.c.id == given.c.id)
        .values(message_id=given.c.message_id, sent_at=given.c.at, **values)
    )


@cache
def hand(postgres: bool) -> Any:
    """Rows in ``ids`` that ``by_worker`` still holds stamped handed at
    ``at_now``; returns their ids."""
    from sqlalchemy import bindparam, update

    return (
        update(sr)
        .where(one_of(sr.c.id, "ids", postgres), *held_by(bindparam("by_worker")))
        .values(handed_at=bindparam("at_now"), updated_at=bindparam("at_now"))
        .returning(sr.c.id)
    )


@cache
def sent_and_hand() -> Any:
    """PostgreSQL: :func:`mark_sent` and :func:`hand` in one statement (the
    first a data-modifying WITH), so that a group commit is one round trip
    in autocommit, as atomic as a transaction. The two must not touch the
    same row (the second would not see the first's change): the caller
    sees to it."""
    return hand(True).add_cte(mark_sent(True).cte("sent"))


__all__ = ["claim", "hand", "held_by", "leavers", "mark_sent", "one_of", "sent_and_hand"]
