"""Bounces, complaints and deliveries from Amazon SES, turned into subscriber changes.

The policy, per recipient of a notification:

* a **permanent** bounce marks an active or pending subscriber *bounced* at once;
* a **transient** bounce is recorded; the ``transient_limit``-th within 30 days
  marks an active or pending subscriber *bounced*;
* an **undetermined** bounce is recorded and changes nothing;
* a **complaint** marks them *complained* at once, whatever their status, and
  suppresses the address so that no import brings it back;
* a **delivery** is recorded, so that sends can count them.

Every event goes into the subscriber's history under SES's feedback id (see
:attr:`~subscribers.notifications.Feedback.event_id`), linked to the send and
issue whose message it is about through the provider message id the ledger
kept. A notification delivered twice changes nothing the second time; an
address that is not a subscriber changes nothing at all. A subscriber
suppressed while an issue is being sent is skipped by the rest of that send,
because the ledger checks each recipient's status when it claims them.

Two ways in, one path: :func:`subscribers.sqs.sync_queue` polls the SQS queue
the SNS topic delivers to, and the web service's ``POST /ses/events`` hands
each post to an :class:`SnsEndpoint`, which verifies it first. Both end in
:func:`apply_feedback`. Mail SES received for the unsubscribe addresses
comes the same ways, and goes to :func:`subscribers.inbound.unsubscribe_by_mail`.
With ``tracking.enabled``, opens and clicks go to :func:`count_engagement`,
which counts them per issue (:mod:`subscribers.engagement`), never per reader.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from subscribers import ledger
from subscribers.inbound import UnsubscribeMailbox, unsubscribe_by_mail
from subscribers.models import (
    EventKind,
    Status,
    Subscriber,
    SuppressionReason,
    dump_detail,
    email_key,
    utcnow,
)
from subscribers.notifications import Feedback, MalformedNotification, Parsed, parse
from subscribers.sns import SeenMessages, SnsRejected, SnsVerifier

if TYPE_CHECKING:
    from subscribers.store import Store, Transaction

log = logging.getLogger(__name__)

TRANSIENT_WINDOW = dt.timedelta(days=30)
MAX_EXTERNAL_ID = 300  # subscriber_events.external_id
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class Policy:
    """How many transient bounces, within what window, make an address bounced."""

    transient_limit: int = 3
    transient_window: dt.timedelta = TRANSIENT_WINDOW
    tracking: bool = False
    """Count opens and clicks per issue (``tracking.enabled``); off: ignore them."""


@dataclass
class Applied:
    """What some feedback did, counted by recipient."""

    bounced: int = 0
    """Permanent bounces."""
    soft_bounced: int = 0
    undetermined: int = 0
    complained: int = 0
    delivered: int = 0
    duplicates: int = 0
    """Feedback already recorded: a notification delivered again."""
    unknown_recipients: int = 0
    """Feedback about an address that is not a subscriber."""
    suppressed: int = 0
    """Subscribers taken off the list: marked bounced or complained."""
    unsubscribed_by_mail: int = 0
    """Readers who mailed their unsubscribe address (:mod:`subscribers.inbound`)."""
    opens: int = 0
    machine_opens: int = 0
    clicks: int = 0
    uncounted: int = 0
    """Opens and clicks not counted: unreadable, too old, or of a message the
    ledger does not know."""

    def add(self, other: Applied) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def apply_feedback(
    store: Store, feedback: Sequence[Feedback], policy: Policy, now: dt.datetime | None = None
) -> Applied:
    """Apply the feedback of one or more notifications in one transaction.

    Another process applying some of the same feedback at the same moment
    (a redelivery racing the original) makes the transaction fail on the
    unique feedback id; it is then run again, and finds those as duplicates.
    """
    if not feedback:
        return Applied()
    moment = now or utcnow()
    return store.retrying(lambda tx: _apply(tx, feedback, policy, moment), CONFLICT_RETRIES)


def apply_notification(
    store: Store, body: str | bytes, policy: Policy, mailbox: UnsubscribeMailbox | None = None
) -> Applied:
    """Parse and apply one notification body, mail to ``mailbox``'s
    addresses included; :class:`MalformedNotification` if it cannot be read."""
    parsed = parse(body)
    applied = apply_feedback(store, parsed.feedback, policy)
    applied.add(count_engagement(store, [parsed], policy))
    applied.unsubscribed_by_mail += unsubscribe_by_mail(store, mailbox, parsed.received)
    return applied


def count_engagement(store: Store, parsed: Sequence[Parsed], policy: Policy) -> Applied:
    """Count the opens and clicks among ``parsed`` in one transaction, when
    ``policy.tracking``; without it they are left alone, like any other
    event without list-hygiene meaning. No subscriber row is read or changed."""
    interactions = [one.interaction for one in parsed if one.interaction is not None]
    if not policy.tracking or not interactions:
        return Applied()
    from subscribers.engagement import count

    done = count(store.engine, interactions)
    return Applied(opens=done.opens, machine_opens=done.machine_opens, clicks=done.clicks,
                   duplicates=done.duplicates, uncounted=done.uncounted)


def _apply(
    tx: Transaction, feedback: Sequence[Feedback], policy: Policy, now: dt.datetime
) -> Applied:
    # Recipients in key order: the order their rows are locked in, whoever locks them.
    items = sorted(feedback, key=lambda item: (email_key(item.recipient), item.at))
    found = tx.get_many([email_key(item.recipient) for item in items], lock=True)
    recorded = tx.existing_external_ids([external_id(item) for item in items])
    sent = ledger.sends_for_messages(tx.conn, [item.message_id for item in items])
    batch = _Batch(tx, policy, now)
    for item in items:
        key = email_key(item.recipient)
        subscriber = found.get(key)
        if subscriber is None:
            from subscribers import probes  # `publish doctor --live`'s simulator mail

            if probes.record(tx.conn, item, now):
                log.info("%s about a delivery probe; recorded on the probe", item.kind)
                continue
            batch.out.unknown_recipients += 1
            log.info("%s about an address that is not a subscriber; nothing to do", item.kind)
            continue
        event_key = external_id(item)
        if event_key in recorded:
            batch.out.duplicates += 1
            continue
        recorded.add(event_key)
        message = sent.get(item.message_id)
        found[key] = batch.apply(item, subscriber, event_key, message)
    batch.events.flush()
    return batch.out


class _Batch:
    """The feedback of one transaction, applied one recipient at a time."""

    def __init__(self, tx: Transaction, policy: Policy, now: dt.datetime) -> None:
        self.tx = tx
        self.policy = policy
        self.now = now
        self.out = Applied()
        self.events = _Events(tx)

    def apply(
        self,
        item: Feedback,
        subscriber: Subscriber,
        event_key: str,
        message: ledger.SentMessage | None,
    ) -> Subscriber:
        """Record one recipient's feedback; the subscriber as they are after it."""
        tx, out = self.tx, self.out
        detail: dict[str, Any] = {"message_id": item.message_id, **item.detail}
        if message is not None:
            detail["issue"] = message.issue_slug
        row = {
            "subscriber_id": subscriber.id,
            "at": _moment(item.at, self.now),
            "send_id": message.send_id if message else None,
            "external_id": event_key,
        }
        was = {"from": str(subscriber.status)}
        if item.kind == "delivery":
            self.events.add(row, EventKind.DELIVERED, detail)
            out.delivered += 1
            return subscriber
        if item.kind == "complaint":
            out.complained += 1
            if subscriber.status == Status.COMPLAINED:
                self.events.add(row, EventKind.COMPLAINED, detail)
                tx.suppress(subscriber.email, SuppressionReason.COMPLAINED)  # make sure
                return subscriber
            self.events.add(row, EventKind.COMPLAINED, detail | was)
            out.suppressed += 1
            return tx.set_status(subscriber, Status.COMPLAINED, None)
        if item.bounce_type == "Permanent":
            out.bounced += 1
            detail["bounce_type"] = "Permanent"
            if subscriber.status.has_left:
                self.events.add(row, EventKind.BOUNCED, detail)
                return subscriber
            self.events.add(row, EventKind.BOUNCED, detail | was)
            out.suppressed += 1
            return tx.set_status(subscriber, Status.BOUNCED, None)
        if item.bounce_type == "Transient":
            self.events.add(row, EventKind.SOFT_BOUNCED, detail | {"bounce_type": "Transient"})
            out.soft_bounced += 1
            return self._count_transient(subscriber)
        detail["bounce_type"] = "Undetermined"
        self.events.add(row, EventKind.BOUNCE_UNDETERMINED, detail)
        out.undetermined += 1
        return subscriber

    def _count_transient(self, subscriber: Subscriber) -> Subscriber:
        """Mark the subscriber bounced at the limit of transient bounces."""
        if subscriber.status.has_left:
            return subscriber
        self.events.flush()
        window = self.policy.transient_window
        recent = self.tx.count_events(subscriber.id, EventKind.SOFT_BOUNCED, self.now - window)
        if recent < self.policy.transient_limit:
            return subscriber
        self.out.suppressed += 1
        return self.tx.set_status(
            subscriber,
            Status.BOUNCED,
            EventKind.BOUNCED,
            {
                "bounce_type": "Transient",
                "reason": f"{recent} transient bounces in {window.days} days",
            },
        )


class _Events:
    """History rows of one transaction, inserted together."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.rows: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any], kind: EventKind, detail: dict[str, Any]) -> None:
        self.rows.append({**event, "kind": str(kind), "detail": dump_detail(detail)})

    def flush(self) -> None:
        if self.rows:
            self.tx.add_events(self.rows)
            self.rows = []


def external_id(item: Feedback) -> str:
    """The key an event is recorded under: SES's feedback id and the address
    (hashed when too long for the column, which a hostile message may try)."""
    key = item.event_id
    if len(key) <= MAX_EXTERNAL_ID:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _moment(at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """When it happened, by SES's clock; never later than now (a timestamp
    from the future would sit at the top of every history)."""
    try:
        moment = at.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return now
    return min(moment, now)


# ---------------------------------------------------------------------------
# SNS over HTTPS
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What ``POST /ses/events`` answers: an HTTP status and a short word."""

    status: int
    text: str


class SnsEndpoint:
    """Handles the bodies SNS posts to the web service.

    Only a message that :class:`~subscribers.sns.SnsVerifier` accepts (signed
    by SNS, for a configured topic, less than an hour old) and that was not
    handled before is believed: anything else is answered 403 and changes
    nothing. A genuine notification is applied and answered 200; a genuine
    one SES did not write (unreadable) 400, so SNS gives up on it.
    """

    def __init__(
        self,
        store: Store,
        verifier: SnsVerifier,
        policy: Policy,
        seen: SeenMessages | None = None,
        mailbox: UnsubscribeMailbox | None = None,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.policy = policy
        self.seen = seen if seen is not None else SeenMessages()
        self.mailbox = mailbox
        """Whose mail unsubscribes readers (None: received mail changes nothing)."""

    def handle(self, body: bytes) -> Answer:
        try:
            message = self.verifier.verify(body)
        except SnsRejected as exc:
            log.warning("refused a post to /ses/events: %s", exc)
            return Answer(403, "forbidden")
        if message.message_id in self.seen:
            log.warning("refused a post to /ses/events: message %s was handled already",
                        message.message_id[:100])
            return Answer(403, "forbidden")
        if message.type == "SubscriptionConfirmation":
            try:
                self.verifier.confirm_subscription(message)
            except SnsRejected as exc:
                log.warning("refused a subscription confirmation: %s", exc)
                return Answer(403, "forbidden")
            except Exception as exc:
                log.error("could not confirm the subscription to %s: %s", message.topic_arn, exc)
                return Answer(502, "could not confirm")
            log.info("confirmed the SNS subscription to %s", message.topic_arn)
        elif message.type == "UnsubscribeConfirmation":
            log.warning("SNS says this endpoint was unsubscribed from %s", message.topic_arn)
        else:
            try:
                applied = apply_notification(
                    self.store, message.message, self.policy, self.mailbox
                )
            except MalformedNotification as exc:
                log.warning("SNS message %s is not an SES notification: %s",
                            message.message_id[:100], exc)
                self.seen.add(message)
                return Answer(400, "not an SES notification")
            log.info("SNS message %s: %s", message.message_id[:100], describe(applied))
        self.seen.add(message)
        return Answer(200, "ok")


def describe(applied: Applied, *, zeros: bool = False) -> str:
    """``3 delivered, 1 bounced; 1 taken off the list; 1 already recorded``:
    what some feedback did (with ``zeros``, every kind, even when none)."""
    kinds = [
        (applied.delivered, "delivered"),
        (applied.bounced, "bounced"),
        (applied.soft_bounced, "soft-bounced"),
        (applied.undetermined, "undetermined"),
        (applied.complained, "complained"),
    ]
    others = [
        (applied.duplicates, "already recorded"),
        (applied.unknown_recipients, "not subscribers"),
        (applied.uncounted, "opens or clicks not counted"),
    ]
    shown = [f"{n} {label}" for n, label in kinds if n or zeros]
    if applied.unsubscribed_by_mail:
        shown.append(f"{applied.unsubscribed_by_mail} unsubscribed by mail")
    engaged = [(applied.opens, "opened"), (applied.machine_opens, "machine-opened"),
               (applied.clicks, "clicked")]
    shown += [f"{n} {label}" for n, label in engaged if n]
    text = ", ".join(shown) or "nothing"
    if applied.suppressed or zeros:
        text += f"; {applied.suppressed} taken off the list"
    if any(n for n, _ in others):
        text += "; " + ", ".join(f"{n} {label}" for n, label in others if n)
    return text
