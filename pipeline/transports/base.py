"""The transport interface, and the errors a delivery can end in.

A transport delivers one finished message at a time (an
:class:`~subscribers.mail_template.OutgoingMessage`: envelope and bytes) and
returns the provider's message id. Whatever goes wrong is one of these, so
the send loop can decide what to do without knowing which provider it talks
to (the family's place in the one exception tree: :mod:`subscribers.errors`):

    TransportError            base; the message was not accepted
     ├── Throttled            slow down and retry this message (429, Throttling)
     ├── QuotaExhausted       the daily quota is used up; pause the send
     ├── Rejected             this recipient or message is refused; mark failed, go on
     ├── TemporaryFailure     a network or 5xx problem; retry this message later
     └── SendingStopped       the account cannot send (suspended, paused); stop the send
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.errors import PublishError
from subscribers.mail_template import OutgoingMessage as OutgoingMessage  # what send() takes


class TransportError(PublishError):
    """The message was not accepted; ``str()`` is one line, safe to record in
    the ledger and to show."""


class Throttled(TransportError):
    """Sending too fast; back off and retry the same message."""


class QuotaExhausted(TransportError):
    """The daily sending quota is used up."""

    def __init__(self, message: str, resume_at: datetime | None = None) -> None:
        super().__init__(message)
        self.resume_at = resume_at


class Rejected(TransportError):
    """This message or recipient is refused; other recipients are unaffected."""


class TemporaryFailure(TransportError):
    """A passing failure (network, 5xx); retry later."""


class SendingStopped(TransportError):
    """The account cannot send at all (suspended, sending paused)."""


@dataclass
class Quota:
    """The provider's sending limits, when it has any."""

    max_rate: float | None = None
    """Messages per second."""
    max_24h: float | None = None
    sent_24h: float = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def remaining_24h(self) -> float | None:
        return None if self.max_24h is None or self.max_24h < 0 else self.max_24h - self.sent_24h


class Transport(abc.ABC):
    """Delivers messages. Implementations must be safe to call from several
    threads at once (the send loop keeps a few calls in flight)."""

    name: str = "transport"
    records_all_accepted: bool = False
    """True when :meth:`accepted` is a complete record: a message it does not
    list was never accepted (the outbox: no file, no message)."""

    @property
    def account(self) -> str:
        """Whose sending rate the calls count against: the key of the shared
        budget every sender of it books from (:mod:`pipeline.slots`). The
        transport's name; SES adds its region."""
        return self.name

    @abc.abstractmethod
    def send(self, message: OutgoingMessage) -> str:
        """Deliver ``message``; return the provider's message id."""

    def quota(self) -> Quota:
        """The provider's limits; unlimited unless the provider says otherwise."""
        return Quota()

    def accepted(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """Of the messages with these Message-IDs (each mapped to its
        envelope recipient), those this transport's own records show it
        accepted before, as Message-ID → the provider's message id.

        For the recipients a crashed run handed over without recording a
        result. The default knows of none (SES keeps no record to ask)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
