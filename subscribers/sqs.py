"""Draining the SQS queue that SES notifications arrive in (through SNS).

:func:`sync_queue` receives up to ten messages at a time, applies what they
report in one transaction (:func:`subscribers.events.apply_feedback`), and
only then deletes them from the queue. A process that dies between the two
loses nothing: the messages come back after the queue's visibility timeout
and, recorded already, change nothing the second time. While a batch is in
hand, a :class:`~subscribers.heartbeat.Heartbeat` keeps extending its
visibility, so that a slow database write or delete does not let it show
again mid-work, be received again and again, and end in the dead-letter
queue. The timeout is read from the queue once a run; when the credentials
may not read it, each receive asks for :data:`ASKED_VISIBILITY` instead.

Messages may be SNS envelopes or raw SES notifications (an SNS subscription
with raw message delivery), in either SES shape. Mail SES received for the
unsubscribe addresses unsubscribes the readers whose tokens it was sent to
(:mod:`subscribers.inbound`), and is deleted like the rest, whatever it
changed. With ``tracking.enabled``, opens and clicks are counted per issue
(:func:`subscribers.events.count_engagement`, one transaction a batch).
Other event types (sends; opens and clicks without tracking) are logged and
deleted.
A message that cannot be read at all is left on the queue (and not
extended) for its redrive policy to move to a dead-letter queue, where it
can be inspected; the run goes on with the rest.

A round trip to SQS takes tens of milliseconds and brings at most ten
messages, so several receivers work at once, each receive → apply → delete
in turn; the database takes one transaction at a time on SQLite, and row
locks taken in one order on PostgreSQL.

The SQS client is passed in (a boto3 client), so the caller decides how it
is configured; its errors become a :class:`QueueError` naming the queue, in
:func:`subscribers.aws.aws_problem`'s words.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from subscribers.aws import aws_problem, error_response
from subscribers.errors import QueueError, first_line
from subscribers.events import Applied, Policy, apply_feedback, count_engagement
from subscribers.heartbeat import Heartbeat
from subscribers.inbound import UnsubscribeMailbox, unsubscribe_by_mail
from subscribers.notifications import MalformedNotification, Parsed, parse
from subscribers.store import Store

log = logging.getLogger(__name__)

RECEIVE_BATCH = 10
"""SQS's most per ReceiveMessage."""
RECEIVERS = 8
ASKED_VISIBILITY = 60
"""Seconds of visibility each receive asks for when the queue's own
VisibilityTimeout may not be read (no sqs:GetQueueAttributes)."""


@dataclass
class SyncReport:
    """What one `publish events sync` run did."""

    received: int = 0
    deleted: int = 0
    """Messages whose effects are committed and that are off the queue."""
    ignored: int = 0
    """Notifications of other event types (sends; opens and clicks without
    tracking), deleted. Opens and clicks that tracking could not count (of a
    message the ledger does not know...) are ``applied.uncounted``."""
    kept: int = 0
    """Unreadable messages left on the queue for its redrive policy."""
    undeleted: int = 0
    """Applied, but SQS refused to delete them: they come back as duplicates."""
    applied: Applied = field(default_factory=Applied)
    seconds: float = 0.0


def sync_queue(
    store: Store,
    sqs: Any,
    queue_url: str,
    policy: Policy,
    *,
    max_messages: int | None = None,
    wait_seconds: int = 0,
    receivers: int = RECEIVERS,
    stopped: Callable[[], bool] | None = None,
    mailbox: UnsubscribeMailbox | None = None,
) -> SyncReport:
    """Apply the notifications waiting on the queue, then return; mail
    received for ``mailbox``'s addresses unsubscribes their readers.

    Stops when a receive finds the queue empty (after waiting up to
    ``wait_seconds`` for a message: SQS long polling), after
    ``max_messages``, or when ``stopped()`` becomes true (the batches in
    hand are finished first). Raises :class:`QueueError` when the queue
    cannot be read; what was applied by then stays applied.
    """
    started = time.monotonic()
    try:
        visibility = _queue_visibility(sqs, queue_url)
    except Exception as exc:
        error = _queue_error(exc, queue_url)
        if error is exc:
            raise
        raise error from None
    run = _Run(
        store, sqs, queue_url, policy, max_messages, wait_seconds, stopped, visibility, mailbox
    )
    threads = [
        threading.Thread(target=run.work, name=f"sqs-receiver-{n}", daemon=True)
        for n in range(max(1, receivers))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if run.error is not None:
        raise run.error
    run.report.seconds = time.monotonic() - started
    return run.report


class _Run:
    """The state the receivers share."""

    def __init__(
        self,
        store: Store,
        sqs: Any,
        queue_url: str,
        policy: Policy,
        max_messages: int | None,
        wait_seconds: int,
        stopped: Callable[[], bool] | None,
        visibility: int | None,
        mailbox: UnsubscribeMailbox | None = None,
    ) -> None:
        self.store = store
        self.sqs = sqs
        self.queue_url = queue_url
        self.policy = policy
        self.max_messages = max_messages
        self.wait_seconds = max(0, min(20, wait_seconds))
        self.stopped = stopped or (lambda: False)
        self.asked_visibility = ASKED_VISIBILITY if visibility is None else None
        """What each receive asks for: None, the queue's own timeout."""
        self.visibility = ASKED_VISIBILITY if visibility is None else visibility
        self.report = SyncReport()
        self.mailbox = mailbox
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._taken = 0
        self._done = False
        self._kept_ids: set[str] = set()

    def work(self) -> None:
        name = f"{threading.current_thread().name}-heartbeat"
        heartbeat = Heartbeat(self.sqs, self.queue_url, self.visibility, name=name)
        try:
            while wanted := self._take():
                since = time.monotonic()
                messages = self._receive(wanted)
                self._give_back(wanted - len(messages))
                if not messages:
                    self._finish()
                    continue
                with heartbeat.keep(messages, since):
                    if not self._process(messages, heartbeat):
                        self._finish()
        except BaseException as exc:
            with self._lock:
                self.error = self.error or _queue_error(exc, self.queue_url)
                self._done = True
        finally:
            heartbeat.close()

    # -- sharing the work ----------------------------------------------------

    def _take(self) -> int:
        """How many messages this receiver may ask for next (0: stop)."""
        with self._lock:
            if self._done or self.stopped():
                return 0
            if self.max_messages is None:
                return RECEIVE_BATCH
            wanted = min(RECEIVE_BATCH, self.max_messages - self._taken)
            self._taken += max(0, wanted)
            return max(0, wanted)

    def _give_back(self, count: int) -> None:
        if count > 0 and self.max_messages is not None:
            with self._lock:
                self._taken -= count

    def _finish(self) -> None:
        with self._lock:
            self._done = True

    # -- one batch -----------------------------------------------------------

    def _receive(self, wanted: int) -> list[dict[str, Any]]:
        asked = {} if self.asked_visibility is None else {
            "VisibilityTimeout": self.asked_visibility}
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            **asked,
        )
        return list(response.get("Messages", []))

    def _process(self, messages: list[dict[str, Any]], heartbeat: Heartbeat) -> bool:
        """Apply a batch and delete what was applied; False when the batch
        held nothing new (only unreadable messages seen before in this run).
        The heartbeat keeps extending only the messages still to be deleted."""
        with self._lock:
            fresh = any(str(m.get("MessageId", "?")) not in self._kept_ids for m in messages)
        readable: list[tuple[dict[str, Any], Parsed]] = []
        ignored = kept = 0
        for message in messages:
            try:
                parsed = parse(message.get("Body", ""))
            except MalformedNotification as exc:
                kept += 1
                self._keep(message, str(exc))
                continue
            if parsed.ignored and not (self.policy.tracking and parsed.interaction):
                ignored += 1
                log.info("deleting a %s notification (not about list hygiene)", parsed.ignored)
            readable.append((message, parsed))
        heartbeat.only(message for message, _ in readable)
        applied, done = self._apply(readable)
        heartbeat.only(done)
        kept += len(readable) - len(done)
        undeleted = self._delete(done) if done else 0
        with self._lock:
            report = self.report
            report.received += len(messages)
            report.deleted += len(done) - undeleted
            report.undeleted += undeleted
            report.ignored += ignored
            report.kept += kept
            report.applied.add(applied)
        return fresh

    def _apply(
        self, readable: list[tuple[dict[str, Any], Parsed]]
    ) -> tuple[Applied, list[dict[str, Any]]]:
        """Apply the batch in one transaction: what it did, and the messages
        to delete. Should the database refuse it, each message is tried
        alone, and one it refuses again is left on the queue like an
        unreadable one; only a database that cannot be reached stops the run."""
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            return self._applied([parsed for _, parsed in readable]), [m for m, _ in readable]
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            log.warning("a batch of %d messages failed (%s); applying them one by one",
                        len(readable), first_line(exc, 300))
        applied = Applied()
        done: list[dict[str, Any]] = []
        for message, parsed in readable:
            try:
                applied.add(self._applied([parsed]))
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                self._keep(message, first_line(exc, 300))
                continue
            done.append(message)
        return applied, done

    def _applied(self, parsed: list[Parsed]) -> Applied:
        """Apply the feedback of some messages in one transaction, then the
        mail they report received, a transaction for each reader; opens and
        clicks are counted in one more."""
        feedback = [item for one in parsed for item in one.feedback]
        applied = apply_feedback(self.store, feedback, self.policy)
        applied.add(count_engagement(self.store, parsed, self.policy))
        for one in parsed:
            applied.unsubscribed_by_mail += unsubscribe_by_mail(
                self.store, self.mailbox, one.received
            )
        return applied

    def _keep(self, message: dict[str, Any], reason: str) -> None:
        """Leave a message on the queue (for its redrive policy), and say why."""
        message_id = str(message.get("MessageId", "?"))
        with self._lock:
            self._kept_ids.add(message_id)
        count = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
        log.warning(
            "message %s cannot be applied (%s); left on the queue (received %s times)",
            message_id[:100],
            reason,
            count,
        )

    def _delete(self, messages: list[dict[str, Any]]) -> int:
        """Delete applied messages from the queue: how many SQS refused."""
        entries = [
            {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
            for n, message in enumerate(messages)
        ]
        response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        failed = response.get("Failed", [])
        for failure in failed:
            # The message comes back later and is recognised as a duplicate.
            log.warning("could not delete a processed message: %s", failure.get("Message", "?"))
        return len(failed)


def _queue_visibility(sqs: Any, queue_url: str) -> int | None:
    """The queue's VisibilityTimeout in seconds; None when the credentials
    may use the queue but not read its attributes."""
    try:
        response = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"]
        )
    except Exception as exc:
        answer = error_response(exc)
        code = answer.code if answer is not None else None
        if code not in ("AccessDenied", "AccessDeniedException"):
            raise
        log.warning(
            "%s: may not read the queue's VisibilityTimeout (%s); asking for %d s on "
            "each receive instead (allow sqs:GetQueueAttributes to use the queue's)",
            queue_url, code, ASKED_VISIBILITY,
        )
        return None
    try:
        return int(response["Attributes"]["VisibilityTimeout"])
    except (KeyError, TypeError, ValueError):
        return None


def _queue_error(exc: BaseException, queue_url: str) -> BaseException:
    """botocore's errors as one line naming the queue; others unchanged."""
    problem = aws_problem(exc)
    return exc if problem is None else QueueError(f"{queue_url}: {problem}")
