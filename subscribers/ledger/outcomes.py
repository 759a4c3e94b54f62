"""Recording what became of claimed rows, in group commits.

    write(outcomes, hand=, heartbeat=)       one transaction, in this order:
      1. outcomes   sent ──▶ "sent" + the provider's id    (whoever holds it)
                    failed, skipped ──▶ that status         (rows still ours)
                    pending ──▶ released, claim undone      (rows still ours)
      2. hand       rows stamped ``handed_at`` before they go to the
                    transport; only the ids returned may be sent
      3. heartbeat  every claim this worker holds on the send refreshed

Stamping ``handed_at`` in a commit of its own before a message goes out is
what lets a later run tell a dead worker's rows that were never sent from
the ambiguous ones (:mod:`subscribers.ledger.claims`).

The sent rows and the hand stamps, a group commit's bulk, go through
statements built once (:mod:`subscribers.ledger.statements`), on PostgreSQL
one statement each whatever the number of rows; a commit of nothing else
(the usual one) is a single statement there, in autocommit: one round trip.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from subscribers import db
from subscribers.ledger.base import LedgerBase
from subscribers.ledger.records import Outcome, stored_id
from subscribers.ledger.statements import hand as hand_statement
from subscribers.ledger.statements import held_by as _held_by
from subscribers.ledger.statements import mark_sent as mark_sent_statement
from subscribers.ledger.statements import sent_and_hand as sent_and_hand_statement
from subscribers.models import utcnow
from subscribers.schema import send_recipients as sr

if TYPE_CHECKING:
    from sqlalchemy import Connection


class Outcomes(LedgerBase):
    """Writing results, handing rows to the transport, and the heartbeat."""

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write what became of claimed rows."""
        if outcomes:
            self.write(outcomes)

    def write(
        self,
        outcomes: Sequence[Outcome] = (),
        *,
        hand: Sequence[int] = (),
        heartbeat: int | None = None,
    ) -> set[int]:
        """One group commit, in this order: the results in ``outcomes``; the
        rows in ``hand`` stamped as handed to the transport, of those still
        this worker's (the ids returned: only those may be sent); and with
        ``heartbeat`` (a send id) every claim this worker holds on that send
        refreshed. A single unit of work, tried again as a whole."""
        if not (outcomes or hand or heartbeat is not None):
            return set()
        return self._retrying(lambda: self._write(outcomes, hand, heartbeat))

    def _write(
        self, outcomes: Sequence[Outcome], hand: Sequence[int], heartbeat: int | None
    ) -> set[int]:
        from sqlalchemy import update

        now = utcnow()
        if self.engine.dialect.name == "postgresql" and heartbeat is None:
            sent = [o for o in outcomes if o.status == "sent"]
            if len(sent) == len(outcomes) and not {o.row_id for o in sent}.intersection(hand):
                return self._sent_and_hand(sent, hand, now)
        handed: set[int] = set()
        with db.writing(self.engine) as conn:
            if outcomes:
                record_outcomes(conn, self.worker, outcomes, now)
            if hand:
                postgres = conn.dialect.name == "postgresql"
                rows = conn.execute(
                    hand_statement(postgres),
                    {"ids": list(hand), "by_worker": self.worker, "at_now": now},
                ).all()
                handed = {int(row.id) for row in rows}
            if heartbeat is not None:
                conn.execute(
                    update(sr)
                    .where(sr.c.send_id == heartbeat, *held_by(self.worker))
                    .values(updated_at=now)
                )
        if heartbeat is not None:
            self._last_heartbeat = now
        return handed

    def _sent_and_hand(
        self, sent: Sequence[Outcome], hand: Sequence[int], now: dt.datetime
    ) -> set[int]:
        """PostgreSQL, a commit of sent rows and hand stamps only: one
        statement in autocommit, one round trip."""
        params = {**_sent_arrays(sent), "ids": list(hand), "by_worker": self.worker, "at_now": now}
        with self.engine.connect() as conn:
            rows = conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                sent_and_hand_statement(), params
            )
            return {int(row.id) for row in rows}

    def heartbeat(self, send_id: int, *, force: bool = False) -> None:
        """Refresh this worker's claims so that no other run takes them for
        a crashed one's; cheap to call often (it acts every
        :attr:`heartbeat_every`)."""
        if not force and utcnow() - self._last_heartbeat < self.heartbeat_every:
            return
        self.write(heartbeat=send_id)

    def apply_recovered(self, send_id: int, worker: str, outcomes: Sequence[Outcome]) -> int:
        """Write results that ``worker`` could not record before it stopped
        (kept in a recovery file): a sent message always, other results only
        where the row is still that worker's. Returns the rows changed."""

        sent = [o for o in outcomes if o.status == "sent"]
        others = [o for o in outcomes if o.status != "sent"]

        def write() -> int:
            now = utcnow()
            changed = 0
            with db.writing(self.engine) as conn:
                if sent:
                    newly = (sr.c.send_id == send_id, sr.c.status != "sent")
                    changed += _mark_sent(conn, sent, now, *newly)
                if others:
                    record_outcomes(conn, worker, others, now)
            return changed + len(others)

        return self._retrying(write)


def _mark_sent(conn: Connection, sent: Sequence[Outcome], now: dt.datetime, *where: Any) -> int:
    """Record ``sent`` rows as sent with their provider ids, where ``where``
    also holds; how many rows changed."""
    postgres = conn.dialect.name == "postgresql"
    statement = mark_sent_statement(postgres)
    if where:
        statement = statement.where(*where)
    params: Any
    if postgres:
        params = {**_sent_arrays(sent), "at_now": now}
    else:
        params = [
            {"row_id": o.row_id, "message_id": stored_id(o.message_id), "at": o.at, "at_now": now}
            for o in sent
        ]
    return int(conn.execute(statement, params).rowcount or 0)


def _sent_arrays(sent: Sequence[Outcome]) -> dict[str, list[Any]]:
    """The parameters of PostgreSQL's :func:`mark_sent_statement`: arrays in step."""
    return {
        "sent_ids": [o.row_id for o in sent],
        "sent_message_ids": [stored_id(o.message_id) for o in sent],
        "sent_ats": [o.at for o in sent],
    }


def record_outcomes(
    conn: Connection, worker: str, outcomes: Sequence[Outcome], now: dt.datetime
) -> None:
    """Write ``outcomes`` on ``conn``: a sent message whoever holds its row,
    any other result only on rows ``worker`` still holds."""
    from sqlalchemy import bindparam, update

    sent = [o for o in outcomes if o.status == "sent"]
    if sent:
        # A sent message is a fact whoever holds the claim now: always recorded.
        _mark_sent(conn, sent, now)
    for status in ("failed", "skipped"):
        batch = [o for o in outcomes if o.status == status]
        if batch:
            conn.execute(
                update(sr)
                .where(sr.c.id == bindparam("row_id"), *held_by(worker))
                .values(status=status, error=bindparam("error"), updated_at=now),
                [{"row_id": o.row_id, "error": (o.error or "")[:2000]} for o in batch],
            )
    released = [o for o in outcomes if o.status == "pending"]
    if released:
        # Back to pending. Never attempted: the claim is undone, attempts
        # included; attempted: the attempt counts and its error is kept.
        conn.execute(
            update(sr)
            .where(sr.c.id == bindparam("row_id"), *held_by(worker))
            .values(
                status="pending",
                claimed_by=None,
                attempts=sr.c.attempts - bindparam("undo"),
                error=bindparam("error"),
                handed_at=None,
                updated_at=now,
            ),
            [{"row_id": o.row_id, "undo": 0 if o.error else 1, "error": o.error} for o in released],
        )


def held_by(worker: str) -> tuple[Any, ...]:
    """Conditions for a row ``worker`` holds in ``sending``."""
    return _held_by(worker)
