"""Double opt-in in the database: form signups waiting for confirmation, the
confirmation messages mailers claim, and the guards on both.

    form signup ──add_signup──▶ signups row (nonce, name, consent)
                                 │  its link is confirmed: signup(nonce), then
                                 │  drop_signups
    pending subscriber, due ──claim_confirmations──▶ ClaimedConfirmation
                                 │  a lease: extend_confirmations while mailing,
                                 │  release_confirmations for those not tried
    guards: take_limits / give_back_limits (rate limits, :mod:`subscribers.limits`)

A mailer's batch as a whole (the mailboxes that were reported, limits taken
for each message, results recorded) is in :mod:`subscribers.store.confirmation_batches`.

Primitives of a :class:`~subscribers.store.transaction.Transaction`; the
rules that combine them are in :mod:`subscribers.signup`, :mod:`subscribers.confirm`
and :mod:`subscribers.confirmation_queue`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, insert, select, update

from subscribers import limits
from subscribers.models import Consent, Signup, Status, Subscriber, utcnow
from subscribers.schema import signups, subscribers
from subscribers.store.confirmation_batches import among
from subscribers.store.rows import to_signup, to_subscriber

if TYPE_CHECKING:
    from sqlalchemy import Connection

_SIGNUP = select(signups).where(
    signups.c.subscriber_id == bindparam("subscriber_id"), signups.c.nonce == bindparam("nonce")
)
_INSERT_SIGNUP = insert(signups)


@dataclass(frozen=True)
class ClaimedConfirmation:
    """A confirmation message a mailer has claimed: send it, record the result."""

    subscriber: Subscriber
    attempt: int
    """1 for the first claim since the signup, 2 for the next..."""


class ConfirmationRows:
    """Signups, confirmation claims and signup guards on one connection."""

    conn: Connection

    # -- confirmation messages -------------------------------------------------

    def claim_confirmations(
        self, limit: int, now: dt.datetime, *, worker: str, lease: dt.timedelta
    ) -> list[ClaimedConfirmation]:
        """Claim up to ``limit`` pending subscribers whose confirmation message
        is due, oldest first, for ``worker``, until ``now + lease``: their
        message is due again then, unless the worker records a result (or
        :meth:`extend_confirmations`) before. Each claim counts as an attempt.
        On PostgreSQL, rows another mailer is claiming are skipped."""
        query = (
            select(subscribers)
            .where(subscribers.c.confirmation_due_at <= now)
            .where(subscribers.c.status == str(Status.PENDING))
            .order_by(subscribers.c.confirmation_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = self.conn.execute(query).all()
        if rows:
            self.conn.execute(
                update(subscribers)
                .where(among(self.conn, subscribers.c.id, "ids"))
                .values(
                    confirmation_due_at=now + lease,
                    confirmation_claimed_by=worker,
                    confirmation_attempts=subscribers.c.confirmation_attempts + 1,
                ),
                {"ids": [row.id for row in rows]},
            )
        return [
            ClaimedConfirmation(to_subscriber(row), int(row.confirmation_attempts) + 1)
            for row in rows
        ]

    def extend_confirmations(self, worker: str, until: dt.datetime) -> int:
        """Move the end of every lease ``worker`` still holds to ``until``."""
        result = self.conn.execute(
            update(subscribers)
            .where(subscribers.c.confirmation_claimed_by == worker)
            .where(subscribers.c.confirmation_due_at.is_not(None))
            .where(subscribers.c.status == str(Status.PENDING))
            .values(confirmation_due_at=until)
        )
        return int(result.rowcount or 0)

    def release_confirmations(
        self, worker: str, subscriber_ids: Sequence[int], due: dt.datetime
    ) -> None:
        """Give back claims ``worker`` holds and did not try: due at ``due``,
        and the claim not counted as an attempt."""
        if subscriber_ids:
            self.conn.execute(
                update(subscribers)
                .where(subscribers.c.id.in_(list(subscriber_ids)))
                .where(subscribers.c.confirmation_claimed_by == worker)
                .values(
                    confirmation_due_at=due,
                    confirmation_claimed_by=None,
                    confirmation_attempts=subscribers.c.confirmation_attempts - 1,
                )
            )

    # -- signups waiting for confirmation --------------------------------------

    def add_signup(self, subscriber_id: int, nonce: str, name: str, consent: Consent) -> Signup:
        """Keep a form signup, with the name and consent it brings, until its
        link (the one with ``nonce``) is confirmed."""
        at = consent.at or utcnow()
        values = {
            "subscriber_id": subscriber_id,
            "nonce": nonce,
            "name": name,
            "consent_at": at,
            "consent_ip": consent.ip,
            "consent_user_agent": consent.user_agent,
            "consent_text": consent.text,
            "consent_source": consent.source,
            "created_at": at,
            "mailed_at": None,
        }
        signup_id = self.conn.execute(_INSERT_SIGNUP.returning(signups.c.id), values).scalar_one()
        return to_signup({"id": signup_id, **values})

    def signup(self, subscriber_id: int, nonce: str) -> Signup | None:
        """The subscriber's signup whose link carries ``nonce``, if it still waits."""
        row = self.conn.execute(_SIGNUP, {"subscriber_id": subscriber_id, "nonce": nonce}).first()
        return to_signup(row) if row else None

    def signups(self, subscriber_id: int) -> list[Signup]:
        """The subscriber's signups waiting for confirmation, oldest first."""
        query = select(signups).where(signups.c.subscriber_id == subscriber_id)
        return [to_signup(row) for row in self.conn.execute(query.order_by(signups.c.id))]

    def drop_signups(
        self, subscriber_id: int, *, unmailed_or_before: dt.datetime | None = None
    ) -> None:
        """Forget the subscriber's signups, and so their links: all of them,
        or with ``unmailed_or_before`` those never mailed (nobody has their
        link) and those last mailed before then (their links have expired)."""
        query = delete(signups).where(signups.c.subscriber_id == subscriber_id)
        if unmailed_or_before is not None:
            query = query.where(
                signups.c.mailed_at.is_(None) | (signups.c.mailed_at < unmailed_or_before)
            )
        self.conn.execute(query)

    # -- guards ------------------------------------------------------------------

    def take_limits(self, buckets: Sequence[limits.Bucket], now: dt.datetime) -> limits.Taken:
        """Count a hit in every bucket, or in none when one is over its limit."""
        return limits.take(self.conn, buckets, now)

    def give_back_limits(self, taken: limits.Taken | Sequence[tuple[str, int]]) -> None:
        """Uncount the hits of a take (or of several: their ``rows`` together)."""
        limits.give_back(self.conn, taken.rows if isinstance(taken, limits.Taken) else taken)
