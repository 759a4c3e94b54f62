"""Readers who left, as the ledger sees them: the issue that last reached a
reader before they left, and per send why its readers left.

    last_send_reaching(conn, subscriber_id, before)  ──▶ send id | None
        the newest send whose message to the subscriber was sent by then
    departures(conn, send_id)                        ──▶ Departures
        the reasons on the ``unsubscribed`` events attributed to the send,
        counted, and their comments (no address in them)

The reasons themselves are recorded by :mod:`subscribers.leaving`, on the
reader's ``unsubscribed`` event, linked to the send this module found for
them. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from subscribers.models import EventKind, LeavingReason, load_detail
from subscribers.schema import send_recipients as sr
from subscribers.schema import subscriber_events

if TYPE_CHECKING:
    from sqlalchemy import Connection

_ADDRESS = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+")
"""Anything in a comment that looks like an email address."""
HIDDEN_ADDRESS = "[address]"

_LAST_SEND = (
    select(sr.c.send_id)
    .where(
        sr.c.subscriber_id == bindparam("subscriber_id"),
        sr.c.status == "sent",
        sr.c.sent_at <= bindparam("before"),
    )
    .order_by(sr.c.sent_at.desc(), sr.c.id.desc())
    .limit(1)
)
_REASONED = (
    select(subscriber_events.c.detail)
    .where(
        subscriber_events.c.send_id == bindparam("send_id"),
        subscriber_events.c.kind == str(EventKind.UNSUBSCRIBED),
    )
    .order_by(subscriber_events.c.at, subscriber_events.c.id)
)


def _no_reasons() -> dict[str, int]:
    return dict.fromkeys((str(reason) for reason in LeavingReason), 0)


@dataclass(frozen=True)
class Departures:
    """Why a send's readers left, as far as they said."""

    reasons: dict[str, int] = field(default_factory=_no_reasons)
    """Readers per :class:`~subscribers.models.LeavingReason`, every one named."""
    comments: tuple[str, ...] = ()
    """What they wrote, oldest first, with addresses taken out."""

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def as_dict(self) -> dict[str, Any]:
        """The counts only: the comments' words stay out of ``--json``."""
        return {"reasons": dict(self.reasons), "comments": len(self.comments)}


def last_send_reaching(conn: Connection, subscriber_id: int, before: dt.datetime) -> int | None:
    """The send whose message to the subscriber went out last by ``before``
    (the moment they unsubscribed); None when no issue reached them."""
    found = conn.execute(_LAST_SEND, {"subscriber_id": subscriber_id, "before": before}).first()
    return None if found is None else int(found.send_id)


def departures(conn: Connection, send_id: int) -> Departures:
    """The reasons given by the readers whose unsubscribing is attributed to
    ``send_id``; unsubscribes without one are not counted."""
    reasons = _no_reasons()
    comments = []
    for (text,) in conn.execute(_REASONED, {"send_id": send_id}):
        detail = load_detail(text)
        reason = detail.get("reason")
        if reason not in reasons:
            continue
        reasons[reason] += 1
        comment = detail.get("comment")
        if isinstance(comment, str) and comment:
            comments.append(without_addresses(comment))
    return Departures(reasons, tuple(comments))


def without_addresses(text: str) -> str:
    """``text`` with whatever looks like an email address as ``[address]``."""
    return _ADDRESS.sub(HIDDEN_ADDRESS, text)


__all__ = ["HIDDEN_ADDRESS", "Departures", "departures", "last_send_reaching", "without_addresses"]
