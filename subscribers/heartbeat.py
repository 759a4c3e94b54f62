"""Keeping a batch of SQS messages hidden while `publish events sync` works on it.

A message received from SQS is hidden from other receivers for the queue's
visibility timeout. Not deleted by then, it shows again, is received again
(by this run or the next), and once it has been received the redrive
policy's ``maxReceiveCount`` times it goes to the dead-letter queue, applied
or not. A batch outlives the timeout when the database is slow to take its
write (another process holds the lock) or SQS slow to answer the delete.

A :class:`Heartbeat` is a thread beside one receiver. While a batch is in
hand it calls ChangeMessageVisibilityBatch every third of the timeout,
counted from before the receive, setting each message's visibility to the
whole timeout again: each message is extended twice before it could show,
so one failed call loses nothing. A failed call is logged and changes
nothing else: should the batch still outlive the timeout, its messages are
received again and applied again, which changes nothing (see
:mod:`subscribers.events`). The extension stops the moment the receiver
deletes the batch or gives up on it, and messages the receiver leaves for
the redrive policy (unreadable ones) are not extended at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from subscribers.aws import aws_problem
from subscribers.errors import first_line

log = logging.getLogger(__name__)

EXTENSIONS_PER_TIMEOUT = 3
"""Extensions per visibility timeout: the first ones may fail or be late."""


class Heartbeat:
    """Extends the visibility of one receiver's batch while it is in hand.

    ``timeout`` is the visibility timeout, in seconds, that the messages were
    received with; 0 (they show again at once) extends nothing and starts no
    thread. :meth:`keep` marks a batch in hand, :meth:`only` narrows it,
    :meth:`close` ends the thread.
    """

    def __init__(self, sqs: Any, queue_url: str, timeout: int, *, name: str = "heartbeat") -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._timeout = timeout
        self._interval = timeout / EXTENSIONS_PER_TIMEOUT
        self._changed = threading.Condition()
        self._handles: dict[str, str] = {}
        """The batch in hand: receipt handle → message id."""
        self._batch = 0
        """Counts batches begun and ended, so that a late answer is recognised."""
        self._due = 0.0
        self._closed = False
        if timeout > 0:
            threading.Thread(target=self._run, name=name, daemon=True).start()

    @contextmanager
    def keep(self, messages: Iterable[dict[str, Any]], since: float) -> Iterator[None]:
        """Keep ``messages``, received by a call made at ``since``
        (:func:`time.monotonic`), hidden until the block ends."""
        with self._changed:
            self._batch += 1
            self._handles = {
                str(m["ReceiptHandle"]): str(m.get("MessageId", "?")) for m in messages
            }
            self._due = since + self._interval
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._batch += 1
                self._handles = {}

    def only(self, messages: Iterable[dict[str, Any]]) -> None:
        """Extend only these of the batch from now on; the others show again
        after the timeout, as the redrive policy expects."""
        wanted = {str(m["ReceiptHandle"]) for m in messages}
        with self._changed:
            self._handles = {h: i for h, i in self._handles.items() if h in wanted}

    def close(self) -> None:
        """Stop the thread (it may finish a call under way, then ends)."""
        with self._changed:
            self._closed = True
            self._handles = {}
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    if self._closed:
                        return
                    wait = self._due - time.monotonic() if self._handles else None
                    if wait is not None and wait <= 0:
                        break
                    self._changed.wait(wait)
                batch, handles = self._batch, dict(self._handles)
                # The new visibility counts from when SQS takes the call,
                # after this moment: the next one is due at the latest then.
                self._due = time.monotonic() + self._interval
            self._extend(batch, handles)

    def _extend(self, batch: int, handles: dict[str, str]) -> None:
        receipts = list(handles)
        entries = [
            {"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": self._timeout}
            for n, receipt in enumerate(receipts)
        ]
        try:
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url, Entries=entries
            )
        except Exception as exc:
            if self._current(batch):
                log.warning(
                    "could not extend the visibility of %d messages in hand (%s): should "
                    "they outlive the visibility timeout, they are received and applied "
                    "again, which changes nothing",
                    len(entries),
                    _reason(exc),
                )
            return
        failed = response.get("Failed", [])
        with self._changed:
            if not failed or batch != self._batch:
                return  # all extended, or the batch is done and the failures moot
            for failure in failed:
                try:
                    receipt = receipts[int(failure.get("Id", ""))]
                except (ValueError, IndexError):
                    continue
                log.warning(
                    "could not extend the visibility of message %s (%s: %s): if it shows "
                    "again before it is deleted, it is received and applied again, which "
                    "changes nothing",
                    handles[receipt][:100],
                    failure.get("Code", "?"),
                    failure.get("Message", "?"),
                )
                if failure.get("SenderFault"):
                    # A receipt SQS no longer knows: asking again cannot help.
                    self._handles.pop(receipt, None)

    def _current(self, batch: int) -> bool:
        with self._changed:
            return batch == self._batch


def _reason(exc: BaseException) -> str:
    """An AWS error in :func:`~subscribers.aws.aws_problem`'s words; anything
    else by its first line."""
    return aws_problem(exc) or first_line(exc, 300)
