"""The memory transport: every accepted message kept in a list, for tests and benches.

Nothing leaves the process. A test hands a :class:`MemoryTransport` to the
send loop where a real transport would go, then reads what went out from
:attr:`MemoryTransport.outbox`. Its hooks make it slow or make it fail, so
one class stands in for every provider behaviour a test needs:

    send(message)
      ├─ sleep(delay)            a provider's latency, outside the lock, so
      │                          calls in flight overlap as they would
      ├─ before_send(message)    may raise any TransportError (Throttled,
      │                          Rejected, ...): the message is not accepted
      └─ under the lock          count it, keep it, return "memory-<run>-<n>"

The list is also the transport's record of what it accepted: after a crash,
:meth:`MemoryTransport.accepted` finds a message by its Message-ID, and a
message it does not list was never accepted, as with the outbox. Two
switches drop that record: ``records=False`` answers as SES does (no record
to ask, so handed rows stay undecided), and ``keep=False`` counts messages
without keeping them, for a bench that must run in constant memory.

It is built directly and never chosen by name from the settings: a send
whose messages vanish with the process would still record every reader as
sent.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from email.parser import BytesHeaderParser

from pipeline.transports.base import OutgoingMessage, Quota, Transport

BeforeSend = Callable[[OutgoingMessage], None]
"""Called with each message before it is accepted; raising a
:class:`~pipeline.transports.base.TransportError` refuses that message."""


class MemoryTransport(Transport):
    """Accepts messages into a list; safe to call from several threads."""

    name = "memory"
    records_all_accepted = True

    def __init__(
        self,
        *,
        before_send: BeforeSend | None = None,
        delay: float = 0.0,
        quota: Quota | None = None,
        keep: bool = True,
        records: bool = True,
    ) -> None:
        """``before_send`` decides each message's fate before it is accepted,
        ``delay`` is the seconds every call takes, ``quota`` what
        :meth:`quota` answers (unlimited by default). ``keep=False`` keeps
        only the count; ``records=False`` keeps the messages for the test but
        answers :meth:`accepted` with nothing."""
        self.before_send = before_send
        self.delay = delay
        self._quota = quota if quota is not None else Quota()
        self._keep = keep
        self.records_all_accepted = records and keep
        # Unique across instances too: a resumed run's new transport must not
        # hand out the ids an earlier one recorded in the ledger.
        self._run = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._count = 0
        self._messages: list[OutgoingMessage] = []
        self._ids: list[str] = []

    def send(self, message: OutgoingMessage) -> str:
        if self.delay > 0:
            time.sleep(self.delay)
        if self.before_send is not None:
            self.before_send(message)
        with self._lock:
            self._count += 1
            provider_id = f"memory-{self._run}-{self._count:06d}"
            if self._keep:
                self._messages.append(message)
                self._ids.append(provider_id)
        return provider_id

    @property
    def outbox(self) -> list[OutgoingMessage]:
        """The accepted messages in the order they were accepted (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def ids(self) -> list[str]:
        """The provider ids :meth:`send` returned, in the order of :attr:`outbox`."""
        with self._lock:
            return list(self._ids)

    @property
    def count(self) -> int:
        """How many messages were accepted, kept or not."""
        with self._lock:
            return self._count

    def quota(self) -> Quota:
        return self._quota

    def accepted(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """The messages among ``wanted`` this transport accepted, found by
        Message-ID, with the provider id :meth:`send` returned for each."""
        if not self.records_all_accepted or not wanted:
            return {}
        with self._lock:
            kept = list(zip(self._messages, self._ids, strict=True))
        parser = BytesHeaderParser()
        found: dict[str, str] = {}
        for message, provider_id in kept:
            message_id = str(parser.parsebytes(message.raw).get("Message-ID", "")).strip()
            if message_id in wanted:
                found[message_id] = provider_id
        return found
