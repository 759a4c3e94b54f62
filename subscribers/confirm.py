"""A confirmation link: who it is for, and what pressing its button does.

    link (signed, read by the Signer)
      target(tx, link)          who it is for, and whether confirming would
                                make them active; changes nothing (mail
                                scanners open every link)
      confirm_signup(tx, link)  the subscriber active, with the name and
                                consent of the signup the link was mailed
                                for; any suppression lifted

A link confirms only while its signup waits for it. Once the subscriber is
no longer pending, every signup and so every link mailed so far is dropped:
a link from before an unsubscribe never confirms a later signup
(:class:`StaleLink`). Confirming lifts a suppression (an erased or
complained address), because the person who reads that mailbox has asked,
just now, in a way nobody else can fake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from subscribers.errors import TokenError
from subscribers.models import EventKind, Signup, Status, Subscriber, utcnow
from subscribers.store.rows import consent_columns

if TYPE_CHECKING:
    from subscribers.service import Origin
    from subscribers.store import Transaction
    from subscribers.tokens import ConfirmLink

log = logging.getLogger(__name__)


class StaleLink(TokenError):
    """A genuine confirmation link whose signup no longer waits for it: the
    address left the list since (and maybe signed up again, with links of
    its own)."""


@dataclass(frozen=True)
class Confirmation:
    subscriber: Subscriber
    new: bool
    """False when the subscriber had already confirmed (the link was reused)."""


@dataclass(frozen=True)
class ConfirmTarget:
    """Who a confirmation link is for, as its page shows it (nothing changed)."""

    subscriber: Subscriber
    pending: bool
    """True if pressing the button would confirm; False if already active."""


def target(tx: Transaction, link: ConfirmLink) -> ConfirmTarget:
    """Who ``link`` is for; raises what :func:`confirm_signup` raises."""
    subscriber, signup = _waiting_signup(tx, link)
    return ConfirmTarget(subscriber, pending=signup is not None)


def confirm_signup(tx: Transaction, link: ConfirmLink, origin: Origin) -> Confirmation:
    """Make the subscriber ``link`` is for active, with the name and consent
    of its signup, and record where the confirmation came from (``origin``).

    Raises :class:`TokenError` when the subscriber is gone, and
    :class:`StaleLink` when the link's signup no longer waits."""
    subscriber, signup = _waiting_signup(tx, link, lock=True)
    if signup is None:
        return Confirmation(subscriber, new=False)
    # The name the reader gave with this signup; without one, only a
    # name that was confirmed before (never an unconfirmed signup's).
    name = signup.name or (subscriber.name if subscriber.confirmed_at else "")
    confirmed = tx.set_status(
        subscriber,
        Status.ACTIVE,
        EventKind.CONFIRMED,
        origin.detail(),
        name=name,
        **consent_columns(signup.consent),
        confirmed_at=utcnow(),
        confirmed_ip=origin.ip,
        confirmed_user_agent=origin.user_agent,
    )
    if tx.lift_suppression(subscriber.email):
        log.info("subscriber %d confirmed anew; suppression lifted", subscriber.id)
    return Confirmation(confirmed, new=True)


def _waiting_signup(
    tx: Transaction, link: ConfirmLink, *, lock: bool = False
) -> tuple[Subscriber, Signup | None]:
    """The subscriber a confirmation link is for, and its signup if it
    waits for this link; None if the subscriber is active already."""
    subscriber = tx.get(link.subscriber_id, lock=lock)
    if subscriber is None:
        raise TokenError("this confirmation link is no longer valid; please subscribe again")
    if subscriber.status == Status.ACTIVE:
        return subscriber, None
    if subscriber.status != Status.PENDING:
        raise StaleLink(
            "this confirmation link is out of date: the address left the list after it "
            "was sent; please subscribe again"
        )
    signup = tx.signup(subscriber.id, link.signup)
    if signup is None:
        raise StaleLink(
            "this confirmation link is out of date: the address left the list after it "
            "was sent and was signed up again since; please use the link in the newest "
            "message, or subscribe again"
        )
    return subscriber, signup


__all__ = ["ConfirmTarget", "Confirmation", "StaleLink", "confirm_signup", "target"]
