"""A form signup: the pending subscriber, the signup kept apart, the confirmation queued.

    subscribe(store, email, name, consent_text=..., origin=..., source=..., per_network=...)
      the client network's limit (TooManySignups, nothing recorded)
      new address ──────────────> a pending subscriber, with this signup
      pending ──────────────────> this signup added; stale ones dropped
      unsubscribed, bounced, ... ──> pending again; every older signup dropped
      active ───────────────────> left alone: None
      the confirmation queued (due now) ──> subscribers.confirmation_queue

Most signups are of addresses new to the list: the hit in the network's
limit and the new subscriber, signup and history are one statement on
PostgreSQL, run on its own (:meth:`Store.on_its_own`), and one short
transaction on SQLite (:meth:`Transaction.add_pending`). An address already
on the list takes a second transaction, with the rules below.

Each signup is kept on its own (a :class:`~subscribers.models.Signup`) with
the nonce its link carries and the name and consent it brings (the wording,
and the page it was made on: its source); they become the subscriber's only
when that very link is confirmed (:mod:`subscribers.confirm`), so a
stranger who types in someone's address changes nothing of theirs. The
answer never depends on whether the address was known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from subscribers.addresses import normalize_email
from subscribers.errors import SubscriberError
from subscribers.limits import Bucket, network
from subscribers.models import Consent, EventKind, Limit, Source, Status, utcnow
from subscribers.provenance import SIGNUP_PAGE, signup_source
from subscribers.text import clean_name
from subscribers.tokens import CONFIRM_LIFETIME, new_signup_nonce

if TYPE_CHECKING:
    from subscribers.service import Origin
    from subscribers.store import Store, Transaction


class TooManySignups(SubscriberError):
    """Too many signups came from the client's network lately."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many signups from this network; try again later")
        self.retry_after = retry_after


def subscribe(
    store: Store,
    email: str,
    name: str,
    *,
    consent_text: str,
    origin: Origin,
    source: str = SIGNUP_PAGE,
    per_network: Limit | None = None,
) -> int | None:
    """Record a signup; the subscriber's id if a confirmation is now queued
    for them, else None (see :meth:`subscribers.service.Subscriptions.subscribe`)."""
    address = normalize_email(email)
    display_name = clean_name(name)
    now = utcnow()
    consent = Consent(
        at=now,
        ip=origin.ip,
        user_agent=origin.user_agent,
        text=consent_text,
        source=signup_source(source),
    )
    detail = {"source": str(Source.FORM), **origin.detail()}

    bucket = None if per_network is None else Bucket("ip", network(origin.ip), per_network)
    # Most signups are of new addresses: on PostgreSQL one statement, on its
    # own, counts the network's hit and, within the limit, records the
    # signup; the network's row, which every signup from there updates, is
    # locked only while it runs. Over the limit nothing is recorded.
    with store.on_its_own() as tx:
        queued, taken = tx.add_pending(
            address,
            name=display_name,
            consent=consent,
            nonce=new_signup_nonce(),
            detail=detail,
            limit=bucket,
        )
        if not taken.allowed:
            assert per_network is not None
            raise TooManySignups(per_network.seconds)  # on SQLite, rolls it back
    if queued is not None:
        return queued

    def known(tx: Transaction) -> int | None:
        """An address on the list: its hit was counted above."""
        queued = _record(tx, address, display_name, consent, detail)
        if queued is not None:
            tx.confirmation_queued()
        return queued

    return store.retrying(known)


def _record(
    tx: Transaction, address: str, name: str, consent: Consent, detail: dict[str, Any]
) -> int | None:
    subscriber = tx.get_by_email(address, lock=True)
    nonce = new_signup_nonce()
    if subscriber is None:
        created = tx.insert(
            address,
            name=name,
            status=Status.PENDING,
            source=Source.FORM,
            consent=consent,
            confirmation_due_at=consent.at,
        )
        tx.add_signup(created.id, nonce, name, consent)
        tx.add_event(created.id, EventKind.SUBSCRIBED, detail, at=consent.at)
        return created.id
    if subscriber.status == Status.ACTIVE:
        return None
    # The queue, not the name or consent: those wait with the signup.
    queue = {
        "confirmation_due_at": consent.at,
        "confirmation_claimed_by": None,
        "confirmation_attempts": 0,
    }
    if subscriber.status == Status.PENDING:
        assert consent.at is not None
        # Signups whose link went nowhere, or has expired, are of no use.
        tx.drop_signups(subscriber.id, unmailed_or_before=consent.at - CONFIRM_LIFETIME)
        tx.update(subscriber.id, **queue)
        tx.add_event(subscriber.id, EventKind.SUBSCRIBED, detail, at=consent.at)
    else:
        tx.drop_signups(subscriber.id)
        tx.set_status(subscriber, Status.PENDING, EventKind.SUBSCRIBED, detail, **queue)
    tx.add_signup(subscriber.id, nonce, name, consent)
    return subscriber.id


__all__ = ["TooManySignups", "subscribe"]
