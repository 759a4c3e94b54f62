"""Mailing the confirmation messages that signups queued, within the limits.

    a pending subscriber, due ──claim (a lease, for this worker)──> ClaimedConfirmation
      limits: per mailbox ─ full ──> no more mail for this signup
              per domain ── full ──> due again in a later window
              reported mailbox (it bounced or complained): once in 30 days
      mail the newest signup's link ──> sent: recorded, the queue left
                                    ──> failed: due again after a backoff,
                                        given up after MAX_ATTEMPTS tries

Confirmation messages are limited per mailbox (``Victim+1@`` is
``victim@``), per domain (the rest wait their turn) and to once in 30 days
for a mailbox that complained or bounced; the counts are in the database,
shared by every process (:mod:`subscribers.limits`). The queue itself is in
the database too, so a signup is never lost to a crash and several mailers
(:mod:`subscribers.mailer`) can share it: each claims its batch with a
lease, renewed while it works.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor

from subscribers.errors import first_line
from subscribers.ledger import new_worker_id
from subscribers.limits import Bucket, Taken
from subscribers.mail import confirmation_message
from subscribers.mail_template import MailTemplate, OutgoingMessage
from subscribers.models import (
    CONFIRMATIONS_AFTER_REPORT,
    CONFIRMATIONS_PER_ADDRESS,
    CONFIRMATIONS_PER_DOMAIN,
    Consent,
    EventKind,
    Limit,
    Signup,
    Status,
    Subscriber,
    SuppressionReason,
    mailbox_domain,
    mailbox_key,
    utcnow,
)
from subscribers.store import ClaimedConfirmation, Store, Transaction
from subscribers.tokens import new_signup_nonce

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
"""How long a mailer holds the confirmations it claimed before another may
take them up; renewed while it works (see :meth:`ConfirmationQueue.send_due`)."""
RETRY_AFTER = dt.timedelta(minutes=1)
"""The wait after a first failed try; doubled after each one, up to RETRY_AT_MOST."""
RETRY_AT_MOST = dt.timedelta(hours=1)
MAX_ATTEMPTS = 10
"""Tries at one signup's confirmation (about four hours of them) before giving up."""
MAX_ERROR = 300

ConfirmUrl = Callable[[int, str, dt.datetime], str]
"""The confirmation link for a subscriber's signup nonce, issued at a moment."""


def retry_delay(attempt: int) -> dt.timedelta:
    """How long to wait after failed try number ``attempt`` (1, 2, ...)."""
    delay: dt.timedelta = RETRY_AFTER * 2 ** max(attempt - 1, 0)
    return min(delay, RETRY_AT_MOST)


class ConfirmationQueue:
    """Mails the confirmations due, through ``send_mail``, within the limits;
    ``template()`` is the confirmation message to fill for each."""

    def __init__(
        self,
        store: Store,
        template: Callable[[], MailTemplate],
        send_mail: Callable[[OutgoingMessage], object],
        confirm_url: ConfirmUrl,
        per_address: Limit = CONFIRMATIONS_PER_ADDRESS,
        *,
        per_domain: Limit | None = CONFIRMATIONS_PER_DOMAIN,
    ) -> None:
        self.store = store
        self.template = template
        self.send_mail = send_mail
        self.confirm_url = confirm_url
        self.per_address = per_address
        """Confirmation messages to one mailbox (``mailbox_key``); more are dropped."""
        self.per_domain = per_domain
        """Confirmation messages to one domain; more wait for a later window."""

    def send_now(self, subscriber_id: int) -> bool:
        """Mail a confirmation link to a pending subscriber now; False if they
        are no longer pending (confirmed meanwhile, erased)."""
        subscriber = self.store.get(subscriber_id)
        if subscriber is None or subscriber.status != Status.PENDING:
            return False
        now = utcnow()
        with self.store.transaction() as tx:
            signup = _signup_to_mail(tx, subscriber, now)
        self._mail(subscriber, signup, now)
        return True

    def send_due(
        self,
        batch: int = 50,
        executor: Executor | None = None,
        *,
        worker: str | None = None,
        lease: dt.timedelta = LEASE,
        stopped: Callable[[], bool] = lambda: False,
    ) -> int:
        """Claim up to ``batch`` due confirmations for ``worker`` and mail
        them (with ``executor``, several at once); how many were claimed.
        See :meth:`subscribers.service.Subscriptions.send_due_confirmations`."""
        worker = worker or new_worker_id()
        now = utcnow()
        with self.store.transaction() as tx:
            due = tx.claim_confirmations(batch, now, worker=worker, lease=lease)
        held = _Lease(self.store, worker, lease)

        def work(claim: ClaimedConfirmation) -> None:
            if stopped():
                held.unsent.append(claim.subscriber.id)
                return
            self._confirm_queued(claim)
            held.renew()

        try:
            if executor is None:
                for claim in due:
                    work(claim)
            else:
                list(executor.map(work, due))
        finally:
            if held.unsent:
                with self.store.transaction() as tx:
                    tx.release_confirmations(worker, held.unsent, utcnow())
        return len(due)

    def _confirm_queued(self, claim: ClaimedConfirmation) -> None:
        subscriber = claim.subscriber
        if claim.attempt > MAX_ATTEMPTS:  # the mailer died during the last try
            self._give_up(subscriber, claim.attempt - 1, "the mailer stopped while sending it")
            return
        now = utcnow()
        mailbox = mailbox_key(subscriber.email)
        buckets = [Bucket("mailbox", mailbox, self.per_address)]
        if self.per_domain is not None:
            buckets.append(Bucket("domain", mailbox_domain(mailbox), self.per_domain))
        with self.store.transaction() as tx:
            if tx.mailbox_was_reported(mailbox) or (
                tx.suppression(subscriber.email) == SuppressionReason.COMPLAINED
            ):
                buckets.append(Bucket("reported", mailbox, CONFIRMATIONS_AFTER_REPORT))
            taken = tx.take_limits(buckets, now)
            if taken.allowed:
                signup = _signup_to_mail(tx, subscriber, now)
            elif all(bucket.kind == "domain" for bucket in taken.denied):
                # A burst to one domain: this one waits for a later window.
                (bucket,) = taken.denied
                due = bucket.window_end(now) + dt.timedelta(
                    seconds=random.uniform(0, bucket.seconds)  # noqa: S311 - spreading, not secrets
                )
                tx.update(
                    subscriber.id,
                    confirmation_due_at=due,
                    confirmation_claimed_by=None,
                    confirmation_attempts=max(claim.attempt - 1, 0),
                )
            else:  # enough mail went to this mailbox: this signup gets none
                tx.update(subscriber.id, confirmation_due_at=None, confirmation_claimed_by=None)
        if not taken.allowed:
            log.info(
                "no confirmation for subscriber %d now: %s limit reached",
                subscriber.id,
                ", ".join(bucket.kind for bucket in taken.denied),
            )
            return
        try:
            self._mail(subscriber, signup, now)
        except Exception as exc:
            log.exception("could not mail a confirmation to subscriber %d", subscriber.id)
            self._failed(subscriber, claim.attempt, first_line(exc, MAX_ERROR), taken)

    def _mail(self, subscriber: Subscriber, signup: Signup, now: dt.datetime) -> None:
        """Send the confirmation message for ``signup`` and record it."""
        message = confirmation_message(
            self.template(), subscriber, self.confirm_url(subscriber.id, signup.nonce, now)
        )
        self.send_mail(message)
        with self.store.transaction() as tx:
            if tx.get(subscriber.id) is not None:
                latest = tx.latest_signup(subscriber.id)
                # A newer signup while this one was being sent stays queued.
                done = latest is None or latest.id == signup.id
                queue = {"confirmation_due_at": None, "confirmation_claimed_by": None}
                tx.update(subscriber.id, confirmation_sent_at=now, **(queue if done else {}))
                tx.add_event(subscriber.id, EventKind.CONFIRMATION_SENT, at=now)

    def _failed(
        self, subscriber: Subscriber, attempt: int, error: str, taken: Taken | None = None
    ) -> None:
        """Record a failed try: due again after a backoff, or given up. The
        limits it counted against are given back: nothing was sent."""
        if taken is not None:
            with self.store.transaction() as tx:
                tx.give_back_limits(taken)
        if attempt >= MAX_ATTEMPTS:
            self._give_up(subscriber, attempt, error)
            return
        now = utcnow()
        retry_at = now + retry_delay(attempt)
        detail = {"attempt": attempt, "error": error, "retry_at": retry_at.isoformat()}
        self._requeue(subscriber, retry_at, EventKind.CONFIRMATION_FAILED, detail, at=now)

    def _give_up(self, subscriber: Subscriber, attempts: int, error: str) -> None:
        log.error(
            "giving up mailing a confirmation to subscriber %d after %d attempts: %s",
            subscriber.id,
            attempts,
            error,
        )
        detail = {"attempts": attempts, "error": error}
        self._requeue(subscriber, None, EventKind.CONFIRMATION_GIVEN_UP, detail)

    def _requeue(
        self,
        subscriber: Subscriber,
        due_at: dt.datetime | None,
        kind: EventKind,
        detail: dict[str, object],
        at: dt.datetime | None = None,
    ) -> None:
        """Due again at ``due_at`` (None: never), unclaimed, with ``kind`` in
        the history; only while the subscriber is still pending."""
        with self.store.transaction() as tx:
            current = tx.get(subscriber.id, lock=True)
            if current is None or current.status != Status.PENDING:
                return
            tx.update(subscriber.id, confirmation_due_at=due_at, confirmation_claimed_by=None)
            tx.add_event(subscriber.id, kind, detail, at=at)


class _Lease:
    """The claims of one batch: renewed as messages are done, every quarter
    of the lease, so that a slow batch keeps them; and those not tried."""

    def __init__(self, store: Store, worker: str, length: dt.timedelta) -> None:
        self.store = store
        self.worker = worker
        self.length = length
        self.unsent: list[int] = []
        self._renewed = time.monotonic()
        self._lock = threading.Lock()

    def renew(self) -> None:
        with self._lock:
            if time.monotonic() - self._renewed < self.length.total_seconds() / 4:
                return
            self._renewed = time.monotonic()
        try:
            with self.store.transaction() as tx:
                tx.extend_confirmations(self.worker, utcnow() + self.length)
        except Exception:  # the lease runs out, and another mailer may send them too
            log.exception("could not renew the lease on the confirmations in hand")


def _signup_to_mail(tx: Transaction, subscriber: Subscriber, now: dt.datetime) -> Signup:
    """The signup whose link a confirmation message for ``subscriber`` carries
    (their newest), noted as mailed from now on, so that a signup coming in
    while it is sent does not drop it. A pending subscriber who never used
    the form (an import, the editor) gets one with their own name and consent."""
    signup = tx.latest_signup(subscriber.id)
    if signup is None:
        consent = subscriber.consent
        signup = tx.add_signup(
            subscriber.id,
            new_signup_nonce(),
            subscriber.name,
            Consent(
                at=consent.at or now,
                ip=consent.ip,
                user_agent=consent.user_agent,
                text=consent.text,
            ),
        )
    tx.signup_mailed(signup.id, now)
    return signup


__all__ = ["LEASE", "MAX_ATTEMPTS", "ConfirmationQueue", "retry_delay"]
