"""The claim protocol: taking pending rows to send, and taking back the rows
of workers that died.

    pending ──claim──▶ sending ──hand──▶ sending, handed ──▶ sent    (provider's id)
       ▲                  │                    │         ──▶ failed  (retried next run)
       └──── release ─────┴────── release ─────┘         ──▶ skipped (left the list)

:meth:`Claims.claim` takes small batches: on PostgreSQL with ``SELECT ...
FOR UPDATE SKIP LOCKED``, so several processes share one send without ever
claiming the same row; on SQLite inside a ``BEGIN IMMEDIATE`` transaction,
which makes claims one at a time. A recipient who unsubscribed, bounced,
complained or was erased since the snapshot is skipped at claim time.

Of a dead worker's rows (:mod:`subscribers.ledger.workers` says who is
dead), :meth:`Claims.take_back` puts back to pending those it never handed
to the transport; only the handed rows without a result are *ambiguous*,
the message may or may not have gone. Those are settled from the
transport's own records where it keeps them (the ``settle`` callable: the
outbox's files, the SMTP log), and the rest decided: resend (a duplicate is
better than a miss) or skip.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from subscribers import db
from subscribers.ledger.outcomes import Outcomes, record_outcomes
from subscribers.ledger.records import Ambiguous, Claimed, Outcome, Resumed, Settle
from subscribers.ledger.statements import claim as claim_statement
from subscribers.ledger.statements import leavers as leavers_statement
from subscribers.ledger.workers import is_stale, worker_is_gone
from subscribers.models import as_utc, utcnow
from subscribers.schema import send_recipients as sr

log = logging.getLogger(__name__)

AMBIGUOUS_RESENT = "may have been sent before an interrupted run (sent again)"
AMBIGUOUS_SKIPPED = "may have been sent before an interrupted run (skipped)"


class Claims(Outcomes):
    """Claiming rows for this worker, and taking back dead workers' rows."""

    def claim(
        self, send_id: int, limit: int, done: Sequence[Outcome] = ()
    ) -> tuple[list[Claimed], list[Outcome]]:
        """Record ``done``, then claim up to ``limit`` pending rows, in one
        transaction. Returns the rows to send and those skipped because the
        subscriber has left the list since the snapshot."""
        return self._retrying(lambda: self._claim(send_id, limit, done))

    def _claim(
        self, send_id: int, limit: int, done: Sequence[Outcome]
    ) -> tuple[list[Claimed], list[Outcome]]:
        now = utcnow()
        with db.writing(self.engine) as conn:
            if done:
                record_outcomes(conn, self.worker, done, now)
            if limit <= 0:
                return [], []
            rows = conn.execute(
                claim_statement(),
                {"of_send": send_id, "up_to": limit, "by_worker": self.worker, "at_now": now},
            ).all()
            if not rows:
                return [], []
            ids = [int(row.subscriber_id) for row in rows if row.subscriber_id is not None]
            postgres = conn.dialect.name == "postgresql"
            left = {
                int(sub.id): str(sub.status)
                for sub in conn.execute(leavers_statement(postgres), {"ids": ids})
            }
            claimed: list[Claimed] = []
            skipped: list[Outcome] = []
            for row in sorted(rows, key=lambda r: int(r.id)):
                if row.subscriber_id is None or not row.email:
                    skipped.append(Outcome(int(row.id), "skipped", error="erased", at=now))
                elif int(row.subscriber_id) in left:
                    reason = f"{left[int(row.subscriber_id)]} since the send began"
                    skipped.append(Outcome(int(row.id), "skipped", error=reason, at=now))
                else:
                    claimed.append(
                        Claimed(
                            row_id=int(row.id),
                            subscriber_id=int(row.subscriber_id),
                            email=row.email,
                            name=row.name or "",
                            attempts=int(row.attempts),
                        )
                    )
            if skipped:
                record_outcomes(conn, self.worker, skipped, now)
        return claimed, skipped

    def live_workers(self, send_id: int) -> tuple[str, ...]:
        """Other workers holding claims on this send that look alive."""
        held = self._retrying(lambda: self._holders(send_id), writing=False)
        cutoff = utcnow() - self.lease
        return tuple(
            sorted(
                worker
                for worker, last in held.items()
                if worker != self.worker
                and worker is not None
                and not is_stale(last, worker, self.worker, cutoff)
            )
        )

    def _holders(self, send_id: int) -> dict[str | None, dt.datetime | None]:
        """Each worker holding rows of the send in ``sending``, with its
        latest refresh (its heartbeat refreshes all its rows at once)."""
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sr.c.claimed_by, func.max(sr.c.updated_at))
                .where(sr.c.send_id == send_id, sr.c.status == "sending")
                .group_by(sr.c.claimed_by)
            ).all()
        return {row[0]: as_utc(row[1]) for row in rows}

    def take_back(
        self,
        send_id: int,
        on_ambiguous: Ambiguous = "resend",
        settle: Settle | None = None,
        *,
        own: bool = False,
    ) -> Resumed:
        """Take back the rows of workers presumed dead (lease run out, or
        gone from this host), and with ``own`` this worker's own rows left in
        ``sending`` (a claim whose answer was lost to a dropped connection:
        call it only when every row this worker knows of is decided).

        Rows never handed to the transport go back to pending. Handed rows
        without a result become this worker's; those ``settle`` finds in the
        transport's records show as sent are recorded sent, those they show
        as never accepted go back to pending, and the rest are decided by
        ``on_ambiguous``: back to pending (resend) or skipped."""
        holders = self._retrying(lambda: self._holders(send_id), writing=False)
        cutoff = utcnow() - self.lease
        taken: list[tuple[str | None, dt.datetime | None]] = []
        for worker, last in holders.items():
            if worker == self.worker:
                if own:
                    taken.append((worker, None))
            elif worker_is_gone(worker, self.worker):
                taken.append((worker, None))
            elif (last or cutoff) <= cutoff:
                # Only rows still unrefreshed: a heartbeat committed first wins.
                taken.append((worker, cutoff))
        released = 0
        handed: list[tuple[Claimed, dt.datetime | None]] = []
        for worker, before in taken:
            count, rows = self._retrying(partial(self._take, send_id, worker, before))
            released += count
            handed.extend(rows)
            if count or rows:
                log.warning(
                    "took back %d recipients from %s, which stopped (%d never handed over)",
                    count + len(rows),
                    worker or "no worker",
                    count,
                )
        if not handed:
            return Resumed(released=released, ambiguous_action=on_ambiguous)
        found: dict[int, str | None] = {}
        if settle is not None:
            try:
                found = settle([row for row, _ in handed])
            except Exception as exc:  # the records are a help, never a reason to stop
                log.warning("could not read the transport's records of what it sent: %s", exc)
        outcomes = []
        for row, handed_at in handed:
            if row.row_id in found:
                message_id = found[row.row_id]
                if message_id is None:  # never accepted: no attempt, simply pending
                    outcomes.append(Outcome(row.row_id, "pending"))
                else:
                    outcomes.append(
                        Outcome(row.row_id, "sent", message_id=message_id, at=handed_at or utcnow())
                    )
            elif on_ambiguous == "resend":
                outcomes.append(Outcome(row.row_id, "pending", error=AMBIGUOUS_RESENT))
            else:
                outcomes.append(Outcome(row.row_id, "skipped", error=AMBIGUOUS_SKIPPED))
        self.record(outcomes)
        settled = sum(1 for o in outcomes if o.status == "sent")
        unsent = sum(1 for o in outcomes if o.status == "pending" and not o.error)
        return Resumed(
            ambiguous=len(outcomes) - settled - unsent,
            ambiguous_action=on_ambiguous,
            released=released + unsent,
            settled=settled,
        )

    def _take(
        self, send_id: int, worker: str | None, before: dt.datetime | None
    ) -> tuple[int, list[tuple[Claimed, dt.datetime | None]]]:
        from sqlalchemy import update

        now = utcnow()
        where = [sr.c.send_id == send_id, sr.c.status == "sending", _claimed_by_eq(worker)]
        if before is not None:
            where.append(sr.c.updated_at <= before)
        with db.writing(self.engine) as conn:
            released = conn.execute(
                update(sr)
                .where(*where, sr.c.handed_at.is_(None))
                .values(
                    status="pending",
                    claimed_by=None,
                    attempts=sr.c.attempts - 1,
                    updated_at=now,
                )
            ).rowcount
            rows = conn.execute(
                update(sr)
                .where(*where, sr.c.handed_at.is_not(None))
                .values(claimed_by=self.worker, updated_at=now)
                .returning(
                    sr.c.id,
                    sr.c.subscriber_id,
                    sr.c.email,
                    sr.c.name,
                    sr.c.attempts,
                    sr.c.handed_at,
                )
            ).all()
        handed = [
            (
                Claimed(
                    row_id=int(row.id),
                    subscriber_id=int(row.subscriber_id or 0),
                    email=row.email or "",
                    name=row.name or "",
                    attempts=int(row.attempts),
                ),
                as_utc(row.handed_at),
            )
            for row in sorted(rows, key=lambda r: int(r.id))
        ]
        return int(released or 0), handed

    def resume(
        self, send_id: int, on_ambiguous: Ambiguous = "resend", settle: Settle | None = None
    ) -> Resumed:
        """Make a send ready for another run: take back what dead workers
        left in ``sending`` (:meth:`take_back`) and put failed rows back to
        pending so they are tried again."""
        from sqlalchemy import update

        resumed = self.take_back(send_id, on_ambiguous, settle)

        def retry_failed() -> int:
            with db.writing(self.engine) as conn:
                return int(
                    conn.execute(
                        update(sr)
                        .where(sr.c.send_id == send_id, sr.c.status == "failed")
                        .values(
                            status="pending", claimed_by=None, handed_at=None, updated_at=utcnow()
                        )
                    ).rowcount
                    or 0
                )

        return resumed + Resumed(
            retried=self._retrying(retry_failed), ambiguous_action=on_ambiguous
        )


def _claimed_by_eq(worker: str | None) -> Any:
    """``claimed_by`` is ``worker`` (or, for None, is NULL)."""
    return sr.c.claimed_by.is_(None) if worker is None else sr.c.claimed_by == worker
