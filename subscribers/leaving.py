"""Leaving, gently: the reason a reader may give after unsubscribing.

    read_reason(code, comment)             Reason, or BadReason
    record_reason(store, id, reason)       on the reader's newest ``unsubscribed``
                                           event, with the send that reached
                                           them last: its send id, or None

The page after the unsubscribe button offers the reasons of
:class:`~subscribers.models.LeavingReason` and a few words of the reader's
own; both are optional, and the unsubscribing is done before either is
asked for (the RFC 8058 one-click post records none). The reason goes into
the reader's history, on the event that took them off the list, so that an
erasure takes it with them; a second answer replaces the first. Each is
attributed to the issue that last reached the reader before they left
(:func:`subscribers.ledger.departures.last_send_reaching`), which is how
``publish status`` counts them per issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from subscribers.errors import NotFound, SubscriberError
from subscribers.ledger.departures import last_send_reaching
from subscribers.models import MAX_LEAVING_COMMENT, EventKind, LeavingReason, Status
from subscribers.text import one_line

if TYPE_CHECKING:
    from subscribers.store import Store, Transaction

_KEYS = ("reason", "comment")


class BadReason(SubscriberError):
    """A reason form that cannot be recorded as it is: the page shows it again."""


class NotUnsubscribed(SubscriberError):
    """The reader of the link is not unsubscribed (active, pending, bounced):
    there is no leaving to give a reason for."""


@dataclass(frozen=True)
class Reason:
    """Why a reader left: one of :class:`LeavingReason`, and their words."""

    code: LeavingReason
    comment: str = ""


def read_reason(code: str, comment: str) -> Reason:
    """The reason form's two fields as a :class:`Reason`. Words without a
    choice are ``other``; neither, an unknown choice or more than
    :data:`MAX_LEAVING_COMMENT` characters is :class:`BadReason`."""
    words = one_line(comment)
    if len(words) > MAX_LEAVING_COMMENT:
        raise BadReason(f"comment: longer than {MAX_LEAVING_COMMENT} characters")
    choice = code.strip()
    if not choice:
        if not words:
            raise BadReason("reason: choose one, or write a few words")
        return Reason(LeavingReason.OTHER, words)
    try:
        return Reason(LeavingReason(choice), words)
    except ValueError:
        raise BadReason(f"reason: {choice[:40]!r} is not one of the choices") from None


def record_reason(store: Store, subscriber_id: int, reason: Reason) -> int | None:
    """Keep ``reason`` on the subscriber's newest ``unsubscribed`` event,
    replacing any reason given before, and attribute it to the send that
    last reached them before then; that send's id, or None. Raises
    :class:`~subscribers.errors.NotFound` when there is no such subscriber
    (erased), :class:`NotUnsubscribed` when they are not unsubscribed."""

    def work(tx: Transaction) -> int | None:
        subscriber = tx.get(subscriber_id, lock=True)
        if subscriber is None:
            raise NotFound(f"subscriber {subscriber_id}: no such subscriber")
        if subscriber.status != Status.UNSUBSCRIBED:
            raise NotUnsubscribed("this address is not unsubscribed")
        event = tx.latest_event(subscriber_id, EventKind.UNSUBSCRIBED)
        if event is None:
            raise NotUnsubscribed("this address has no unsubscribing to give a reason for")
        send_id = last_send_reaching(tx.conn, subscriber_id, event.at)
        detail = {key: value for key, value in event.detail.items() if key not in _KEYS}
        detail["reason"] = str(reason.code)
        if reason.comment:
            detail["comment"] = reason.comment
        tx.amend_event(event.id, detail, send_id=send_id)
        return send_id

    with store.transaction() as tx:
        return work(tx)


__all__ = [
    "BadReason",
    "NotUnsubscribed",
    "Reason",
    "read_reason",
    "record_reason",
]
