"""Bounces and complaints from Amazon SES, turned into subscriber changes.

The policy, per recipient of a notification:

* a **permanent** bounce marks an active or pending subscriber *bounced* at once;
* a **transient** bounce is recorded; the ``transient_limit``-th within 30 days
  marks them *bounced*;
* an **undetermined** bounce is recorded and changes nothing;
* a **complaint** marks them *complained* at once, whatever their status, and
  suppresses the address so that no import brings it back;
* a **delivery** is recorded, so sends can count them.

Every event goes into the subscriber's history, linked to the send through
the provider message id the ledger kept, under SES's feedback id, so a
notification delivered twice changes nothing the second time. An address
that is not a subscriber changes nothing at all.

Two ways in, one path: :func:`sync_queue` polls the SQS queue that SNS
delivers to (deleting a message only after its effects are committed), and
the web service's ``POST /ses/events`` hands verified SNS notifications to
:func:`apply_notification`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from subscribers import ledger
from subscribers.models import EventKind, Status, utcnow
from subscribers.notifications import Feedback, MalformedNotification, parse

if TYPE_CHECKING:
    from subscribers.store import Store, Transaction

log = logging.getLogger(__name__)

TRANSIENT_WINDOW = dt.timedelta(days=30)
RECEIVE_BATCH = 10  # SQS's most per ReceiveMessage


@dataclass(frozen=True)
class Policy:
    transient_limit: int = 3
    transient_window: dt.timedelta = TRANSIENT_WINDOW


@dataclass
class Applied:
    """What a batch of feedback did."""

    bounced: int = 0
    soft_bounced: int = 0
    undetermined: int = 0
    complained: int = 0
    delivered: int = 0
    duplicates: int = 0
    unknown_recipients: int = 0

    def add(self, other: Applied) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SyncReport:
    """What one `publish events sync` run did."""

    received: int = 0
    deleted: int = 0
    ignored: int = 0
    kept: int = 0
    """Unreadable messages left on the queue for its redrive policy."""
    applied: Applied = field(default_factory=Applied)
    seconds: float = 0.0


def apply_feedback(
    store: Store, feedback: Sequence[Feedback], policy: Policy, now: dt.datetime | None = None
) -> Applied:
    """Apply the feedback of one notification in one transaction."""
    applied = Applied()
    with store.transaction() as tx:
        for item in feedback:
            _apply_one(tx, item, policy, now or utcnow(), applied)
    return applied


def apply_notification(store: Store, body: str | bytes, policy: Policy) -> Applied:
    """Parse and apply one notification body; :class:`MalformedNotification`
    if it cannot be read."""
    return apply_feedback(store, parse(body).feedback, policy)


def _apply_one(
    tx: Transaction, item: Feedback, policy: Policy, now: dt.datetime, out: Applied
) -> None:
    subscriber = tx.get_by_email(item.recipient, lock=True)
    if subscriber is None:
        out.unknown_recipients += 1
        log.info("%s for an address that is not a subscriber; ignored", item.kind)
        return
    if tx.has_external_id(item.event_id):
        out.duplicates += 1
        return
    send_id = ledger.send_for_message(tx.conn, item.message_id)
    detail: dict[str, Any] = {"message_id": item.message_id, **item.detail}

    def record(kind: EventKind, **extra: Any) -> None:
        tx.add_event(
            subscriber.id,
            kind,
            detail | extra,
            send_id=send_id,
            external_id=item.event_id,
            at=item.at,
        )

    if item.kind == "delivery":
        record(EventKind.DELIVERED)
        out.delivered += 1
    elif item.kind == "complaint":
        record(EventKind.COMPLAINED)
        if subscriber.status != Status.COMPLAINED:
            tx.set_status(subscriber, Status.COMPLAINED, None)
        out.complained += 1
    elif item.bounce_type == "Permanent":
        record(EventKind.BOUNCED, bounce_type="Permanent")
        if subscriber.status in (Status.ACTIVE, Status.PENDING):
            tx.set_status(subscriber, Status.BOUNCED, None)
        out.bounced += 1
    elif item.bounce_type == "Transient":
        record(EventKind.SOFT_BOUNCED, bounce_type="Transient")
        out.soft_bounced += 1
        recent = tx.count_events(
            subscriber.id, EventKind.SOFT_BOUNCED, now - policy.transient_window
        )
        if recent >= policy.transient_limit and subscriber.status == Status.ACTIVE:
            tx.set_status(
                subscriber,
                Status.BOUNCED,
                EventKind.BOUNCED,
                {
                    "bounce_type": "Transient",
                    "reason": f"{recent} transient bounces in {policy.transient_window.days} days",
                },
            )
            out.bounced += 1
    else:
        record(EventKind.BOUNCE_UNDETERMINED, bounce_type=item.bounce_type or "Undetermined")
        out.undetermined += 1


# ---------------------------------------------------------------------------
# The SQS queue
# ---------------------------------------------------------------------------


def sync_queue(
    store: Store,
    sqs: Any,
    queue_url: str,
    policy: Policy,
    *,
    max_messages: int | None = None,
    wait_seconds: int = 0,
    progress: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Drain the queue (or ``max_messages`` of it) into the store.

    A message is deleted only after its effects are committed, so a crash
    loses nothing: the message comes back and, applied again, changes
    nothing. Unreadable messages stay on the queue (the queue's redrive
    policy moves them aside after a few tries); other event types (opens,
    clicks, sends) are logged and deleted.
    """
    report = SyncReport()
    started = time.monotonic()
    while max_messages is None or report.received < max_messages:
        wanted = (
            RECEIVE_BATCH
            if max_messages is None
            else min(RECEIVE_BATCH, max_messages - report.received)
        )
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        report.received += len(messages)
        readable: list[tuple[dict[str, str], tuple[Feedback, ...]]] = []
        for message in messages:
            try:
                parsed = parse(message.get("Body", ""))
            except MalformedNotification as exc:
                report.kept += 1
                log.warning(
                    "message %s is not an SES notification (%s); left on the queue",
                    message.get("MessageId", "?"),
                    exc,
                )
                continue
            if parsed.ignored:
                report.ignored += 1
                log.info("ignoring a %s notification", parsed.ignored)
            entry = {"Id": str(len(readable)), "ReceiptHandle": message["ReceiptHandle"]}
            readable.append((entry, parsed.feedback))
        report.applied.add(_apply_batch(store, [f for _, fs in readable for f in fs], policy))
        if readable:
            _delete(sqs, queue_url, [entry for entry, _ in readable])
            report.deleted += len(readable)
        if progress is not None:
            progress(report)
    report.seconds = time.monotonic() - started
    return report


def _apply_batch(store: Store, feedback: list[Feedback], policy: Policy) -> Applied:
    """One transaction for the whole batch; if another process applied some
    of it at the same moment, apply the items one by one instead."""
    from subscribers.store import Conflict

    if not feedback:
        return Applied()
    try:
        return apply_feedback(store, feedback, policy)
    except Conflict:
        applied = Applied()
        for item in feedback:
            try:
                applied.add(apply_feedback(store, [item], policy))
            except Conflict:
                applied.duplicates += 1
        return applied


def _delete(sqs: Any, queue_url: str, entries: list[dict[str, str]]) -> None:
    response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    for failure in response.get("Failed", []):
        # The message comes back later and is recognised as a duplicate.
        log.warning("could not delete a processed message: %s", failure.get("Message", "?"))
