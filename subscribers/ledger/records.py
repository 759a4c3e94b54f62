"""The ledger's plain data: a send, a claimed row, what became of it, and
what taking back a dead worker's rows found.

    sends row            ──send_record()──▶ SendRecord
    send_recipients row  ──claim──────────▶ Claimed ──the transport──▶ Outcome
    dead workers' rows   ──take back──────▶ Resumed

No SQL here: the parts of :class:`~subscribers.ledger.Ledger` build these
from rows and write them back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from subscribers.models import as_utc, utcnow

if TYPE_CHECKING:
    from sqlalchemy import Row

SendState = Literal["sending", "paused", "interrupted", "stopped", "done"]
RowState = Literal["pending", "sending", "sent", "failed", "skipped"]
Ambiguous = Literal["resend", "skip"]
ROW_STATES: tuple[RowState, ...] = ("pending", "sending", "sent", "failed", "skipped")
MESSAGE_ID_LENGTH = 300
"""send_recipients.message_id's width: longer provider ids are kept cut short."""


@dataclass(frozen=True)
class SendRecord:
    """One issue sent to the list."""

    id: int
    issue_slug: str
    issue_path: str
    subject: str
    transport: str
    status: str
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    paused_until: dt.datetime | None = None
    note: str = ""
    issue_digest: str | None = None
    """sha256 of the issue file's bytes when the send began."""


@dataclass(frozen=True)
class Claimed:
    """A recipient row claimed by this worker: send them the message."""

    row_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row.

    ``status`` is ``sent`` (with ``message_id``), ``failed`` (with
    ``error``), ``skipped`` (with ``error`` as the reason) or ``pending``:
    released unsent, e.g. on Ctrl-C or a paused send; with ``error`` when an
    attempt was made, which then still counts.
    """

    row_id: int
    status: Literal["sent", "failed", "skipped", "pending"]
    message_id: str | None = None
    error: str | None = None
    at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Resumed:
    """What :meth:`Ledger.resume` (before a run) or :meth:`Ledger.take_back`
    (during one) found of a dead worker's rows, and decided."""

    ambiguous: int = 0
    """Rows handed to the transport by a worker that died before their
    result was recorded, and that the transport's records could not settle."""
    ambiguous_action: str = "resend"
    retried: int = 0
    """Failed rows put back to pending."""
    released: int = 0
    """Rows a dead worker claimed but never handed: simply pending again."""
    settled: int = 0
    """Handed rows that the transport's own records show as sent: recorded sent."""

    def __add__(self, other: Resumed) -> Resumed:
        return Resumed(
            ambiguous=self.ambiguous + other.ambiguous,
            ambiguous_action=other.ambiguous_action,
            retried=self.retried + other.retried,
            released=self.released + other.released,
            settled=self.settled + other.settled,
        )

    def __bool__(self) -> bool:
        return bool(self.ambiguous or self.retried or self.released or self.settled)


Settle = Callable[[Sequence["Claimed"]], dict[int, "str | None"]]
"""Given handed rows without a result, what the transport's own records
show of them: row id → the provider's message id for a message it accepted,
or None for one its records prove it never accepted. Rows left out stay
undecided."""


def send_record(row: Row[Any]) -> SendRecord:
    """A ``sends`` row as a :class:`SendRecord`."""
    return SendRecord(
        id=int(row.id),
        issue_slug=row.issue_slug,
        issue_path=row.issue_path,
        subject=row.subject,
        transport=row.transport,
        status=row.status,
        created_at=as_utc(row.created_at) or utcnow(),
        finished_at=as_utc(row.finished_at),
        paused_until=as_utc(row.paused_until),
        note=row.note or "",
        issue_digest=row.issue_digest,
    )


def stored_id(message_id: str | None) -> str:
    """A provider message id as send_recipients.message_id keeps it."""
    return (message_id or "")[:MESSAGE_ID_LENGTH]
