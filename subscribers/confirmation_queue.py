"""Mailing the confirmation messages that signups queued, within the limits.

    pending subscribers, due ──claim a batch (one lease, for this worker)──┐
      in that same transaction, for each:                                   │
        tried MAX_ATTEMPTS times already ──> given up                       │
        limits: per mailbox ─ full ──> no more mail for this signup         │
                per domain ── full ──> due again in a later window          │
                reported mailbox (it bounced or complained): once in 30 days
        the newest signup's link, noted as mailed ──> Outgoing  <───────────┘
    mail each Outgoing (several at once) ──> sent, or failed
    record the batch's results in ONE transaction (:mod:`subscribers.confirmation_batch`):
      sent ──> recorded, the queue left
      failed ──> due again after a backoff, given up after MAX_ATTEMPTS tries
      not tried (the mailer was stopped) ──> given back, due at once

Confirmation messages are limited per mailbox (``Victim+1@`` is
``victim@``), per domain (the rest wait their turn) and to once in 30 days
for a mailbox that complained or bounced; the counts are in the database,
shared by every process (:mod:`subscribers.limits`). The queue itself is in
the database too, so a signup is never lost to a crash and several mailers
(:mod:`subscribers.mailer`) can share it: each claims its batch with a
lease, renewed while it works. A mailer that dies before recording its
batch leaves it to the next mailer when the lease runs out: the messages it
had sent and not recorded (a second's worth at most) go out twice, the
others once.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from subscribers.confirmation_batch import (
    MAX_ATTEMPTS,
    Batch,
    Outgoing,
    Result,
    gave_up,
    record,
    retry_delay,
)
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
STOPPED_WHILE_SENDING = "the mailer stopped while sending it"
MAX_ERROR = 300
"""Characters of a sending error kept in the history."""

ConfirmUrl = Callable[[int, str, dt.datetime], str]
"""The confirmation link for a subscriber's signup nonce, issued at a moment."""


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
            ((signup, before),) = _signups_to_mail(tx, [subscriber], now).values()
        item = Outgoing(subscriber, 0, signup, Taken(()), now, before)
        self._send(item, self.template())
        with self.store.transaction() as tx:
            record(tx, [Result(item, None, utcnow())], [], worker=None)
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
            tx.by_index()
            claims = tx.claim_confirmations(batch, now, worker=worker, lease=lease)
            outgoing = self._prepare(tx, claims, now) if claims else []
        if not outgoing:
            return len(claims)
        template = self.template()
        held = Batch(self.store, worker, lease)

        def work(item: Outgoing) -> None:
            if stopped():
                held.untried(item)
                return
            try:
                self._send(item, template)
            except Exception as exc:
                log.exception("could not mail a confirmation to subscriber %d", item.subscriber.id)
                held.done(Result(item, first_line(exc, MAX_ERROR), utcnow()))
            else:
                held.done(Result(item, None, utcnow()))
            held.renew()

        try:
            if executor is None:
                for item in outgoing:
                    work(item)
            else:
                list(executor.map(work, outgoing))
        finally:
            held.finish()
        return len(claims)

    def _prepare(
        self, tx: Transaction, claims: Sequence[ClaimedConfirmation], now: dt.datetime
    ) -> list[Outgoing]:
        """In the claim's transaction: give up the claims tried too often,
        take the limits of the others, requeue or drop those over a limit,
        and note the signup each of the rest will carry as mailed."""
        changes: list[dict[str, object]] = []
        events: list[dict[str, object]] = []
        live: list[ClaimedConfirmation] = []
        for claim in claims:
            if claim.attempt > MAX_ATTEMPTS:  # its mailer died during the last try
                change, event = gave_up(
                    claim.subscriber.id, claim.attempt - 1, STOPPED_WHILE_SENDING, now
                )
                changes.append(change)
                events.append(event)
            else:
                live.append(claim)
        mailboxes = [mailbox_key(claim.subscriber.email) for claim in live]
        reported = tx.reported_mailboxes(mailboxes)
        complained = {
            email
            for email, reason in tx.suppressed([claim.subscriber.email for claim in live]).items()
            if reason == SuppressionReason.COMPLAINED
        }
        bucket_sets = [
            self._buckets(mailbox, mailbox in reported or claim.subscriber.email in complained)
            for claim, mailbox in zip(live, mailboxes, strict=True)
        ]
        allowed: list[tuple[ClaimedConfirmation, Taken]] = []
        for claim, taken in zip(live, tx.take_limits_each(bucket_sets, now), strict=True):
            if taken.allowed:
                allowed.append((claim, taken))
                continue
            changes.append(_over_limit(claim, taken, now))
            log.info(
                "no confirmation for subscriber %d now: %s limit reached",
                claim.subscriber.id,
                ", ".join(bucket.kind for bucket in taken.denied),
            )
        tx.update_many(changes)
        tx.record_events(events)
        signups = _signups_to_mail(tx, [claim.subscriber for claim, _ in allowed], now)
        outgoing = []
        for claim, taken in allowed:
            signup, before = signups[claim.subscriber.id]
            outgoing.append(Outgoing(claim.subscriber, claim.attempt, signup, taken, now, before))
        return outgoing

    def _buckets(self, mailbox: str, reported: bool) -> list[Bucket]:
        buckets = [Bucket("mailbox", mailbox, self.per_address)]
        if self.per_domain is not None:
            buckets.append(Bucket("domain", mailbox_domain(mailbox), self.per_domain))
        if reported:
            buckets.append(Bucket("reported", mailbox, CONFIRMATIONS_AFTER_REPORT))
        return buckets

    def _send(self, item: Outgoing, template: MailTemplate) -> None:
        """Send the confirmation message ``item`` is for."""
        subscriber = item.subscriber
        link = self.confirm_url(subscriber.id, item.signup.nonce, item.at)
        self.send_mail(confirmation_message(template, subscriber, link))


def _over_limit(claim: ClaimedConfirmation, taken: Taken, now: dt.datetime) -> dict[str, object]:
    """The queue change for a claim over a limit: a burst to one domain waits
    for a later window; a mailbox that had enough mail gets none for this signup."""
    subscriber_id = claim.subscriber.id
    if all(bucket.kind == "domain" for bucket in taken.denied):
        (bucket,) = taken.denied
        due = bucket.window_end(now) + dt.timedelta(
            seconds=random.uniform(0, bucket.seconds)  # noqa: S311 - spreading, not secrets
        )
        return {
            "subscriber_id": subscriber_id,
            "confirmation_due_at": due,
            "confirmation_claimed_by": None,
            "confirmation_attempts": max(claim.attempt - 1, 0),
        }
    return {
        "subscriber_id": subscriber_id,
        "confirmation_due_at": None,
        "confirmation_claimed_by": None,
    }


def _signups_to_mail(
    tx: Transaction, pending: Sequence[Subscriber], now: dt.datetime
) -> dict[int, tuple[Signup, dt.datetime | None]]:
    """By subscriber id, the signup whose link a confirmation message for
    them carries (their newest), noted as mailed from now on, so that a
    signup coming in while it is sent does not drop it; with when it was
    mailed before (to put back should the message not be tried). A pending
    subscriber who never used the form (an import, the editor) gets one
    with their own name and consent."""
    latest = tx.latest_signups(subscriber.id for subscriber in pending)
    chosen: dict[int, tuple[Signup, dt.datetime | None]] = {}
    for subscriber in pending:
        signup = latest.get(subscriber.id)
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
        chosen[subscriber.id] = (signup, signup.mailed_at)
    tx.mark_signups_mailed([(signup.id, now) for signup, _ in chosen.values()])
    return chosen


__all__ = ["LEASE", "MAX_ATTEMPTS", "ConfirmationQueue", "retry_delay"]
