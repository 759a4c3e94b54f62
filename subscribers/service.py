"""The subscription rules, with no HTTP in them: what a reader does from the web.

    Subscriptions                       the one object the web handlers use
      .subscribe(email, name, ...)  ──> signup.py: a pending subscriber, the
                                        signup kept apart, a confirmation queued
      .send_due_confirmations()     ──> confirmation_queue.py: mailed within
      .send_confirmation(id)            the limits, retried, given up
      .confirm_target(token)        ──> confirm.py: who a link is for (no change)
      .confirm(token, origin)       ──> confirm.py: the subscriber active
      .send_welcome(id)                 the welcome, with the unsubscribe link
      .unsubscribe_target(token)        who an unsubscribe link is for
      .unsubscribe(token, origin, how)  off the list, at once
      .give_reason(token, code, ...) ──> leaving.py: why they left, on that event
    ConfirmationMailer              ──> mailer.py: the queue worked through
                                        in a thread or a process of its own
    Origin                              where a request came from (IP, user agent)

Double opt-in: a form signup makes (or refreshes) a *pending* subscriber
and queues a confirmation message, which a :class:`ConfirmationMailer`
sends; only confirming its link makes them *active*, the one status that is
mailed issues. Opening the link changes nothing (mail scanners open every
link): the page it shows has a button, and pressing it confirms.

The answer to a signup never depends on whether the address was known.
Signups are limited per client network (:func:`subscribers.limits.network`),
and confirmation messages per mailbox, per domain and to once in 30 days
for a mailbox that complained or bounced; the counts are in the database,
shared by every process (``limits.py``).

Suppressions (hashes of erased and complained addresses) keep an address
from being mailed again by an import or by the editor. A form signup may
still make a pending row for it and send the one confirmation message: that
is how a reader who erased themselves, or once marked an issue as spam,
comes back. Confirming lifts the suppression, because the person who reads
that mailbox has asked, just now, in a way nobody else can fake. Until then
the address stays suppressed, so nothing else can make it active.

The rules for imports are in ``imports.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from subscribers import confirm, leaving, signup
from subscribers.confirm import Confirmation, ConfirmTarget, StaleLink
from subscribers.confirmation_queue import LEASE, MAX_ATTEMPTS, ConfirmationQueue, retry_delay
from subscribers.mail import ServiceMail, welcome_message
from subscribers.mail_template import OutgoingMessage
from subscribers.mailer import ConfirmationMailer
from subscribers.models import (
    CONFIRMATIONS_PER_ADDRESS,
    CONFIRMATIONS_PER_DOMAIN,
    MAX_IP,
    MAX_USER_AGENT,
    EventKind,
    Limit,
    Newsletter,
    Status,
    Subscriber,
)
from subscribers.provenance import SIGNUP_PAGE
from subscribers.signup import TooManySignups
from subscribers.store import Store
from subscribers.text import clip
from subscribers.tokens import Signer
from subscribers.unsubscribe_address import mailto as unsubscribe_mailto

SendMail = Callable[[OutgoingMessage], object]
"""Delivers one message, envelope and bytes (a transport's ``send``; what
it returns is not used)."""


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as recorded in consent and history: the
    IP address and user agent clipped to one line of at most ``MAX_IP`` and
    ``MAX_USER_AGENT`` characters when made."""

    ip: str | None = None
    user_agent: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", clip(self.ip, MAX_IP))
        object.__setattr__(self, "user_agent", clip(self.user_agent, MAX_USER_AGENT))

    def detail(self) -> dict[str, Any]:
        return {
            key: value for key, value in (("ip", self.ip), ("user_agent", self.user_agent)) if value
        }


class Subscriptions:
    """Subscribe, confirm and unsubscribe, as a reader does it from the web.

    ``mail`` gives the confirmation and welcome messages to fill and hand
    to ``send_mail`` (`publish serve` builds them from the newsletter's
    templates); without it, nothing can be mailed."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        newsletter: Newsletter,
        send_mail: SendMail,
        per_address: Limit = CONFIRMATIONS_PER_ADDRESS,
        *,
        per_domain: Limit | None = CONFIRMATIONS_PER_DOMAIN,
        per_network: Limit | None = None,
        mail: ServiceMail | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.newsletter = newsletter
        self.send_mail = send_mail
        self.mail = mail
        self.per_network = per_network
        """Signups from one client network (the web form's); more are refused."""
        self.confirmations = ConfirmationQueue(
            store,
            lambda: self._mail().confirm(),
            send_mail,
            self.confirm_url,
            per_address,
            per_domain=per_domain,
        )
        """The confirmation messages signups queued, and the limits on them."""

    def confirm_url(
        self, subscriber_id: int, signup: str, issued_at: dt.datetime | None = None
    ) -> str:
        token = self.signer.confirm(subscriber_id, issued_at, signup=signup)
        return self.newsletter.url(f"confirm/{token}")

    def unsubscribe_url(self, subscriber_id: int) -> str:
        return self.newsletter.url(f"unsubscribe/{self.signer.unsubscribe(subscriber_id)}")

    # -- subscribe -----------------------------------------------------------

    def subscribe(
        self,
        email: str,
        name: str,
        *,
        consent_text: str,
        origin: Origin,
        source: str = SIGNUP_PAGE,
    ) -> int | None:
        """Record a signup; the subscriber's id if a confirmation is now
        queued for them, else None. ``source`` is the page it was made on,
        kept with the consent (:func:`~subscribers.provenance.signup_source`).

        New, pending or departed addresses become pending, this signup is
        kept with its name and consent (the subscriber's once confirmed),
        and their confirmation is queued (see :meth:`send_due_confirmations`).
        An active subscriber is left alone (nobody can change their name or
        status by knowing their address), and so is a pending or departed
        one's name and consent. Raises :class:`InvalidEmail` for a malformed
        address, and :class:`TooManySignups` when ``per_network`` signups
        came from ``origin``'s network lately (nothing is recorded then).
        """
        return signup.subscribe(
            self.store,
            email,
            name,
            consent_text=consent_text,
            origin=origin,
            source=source,
            per_network=self.per_network,
        )

    def send_confirmation(self, subscriber_id: int) -> bool:
        """Mail a confirmation link to a pending subscriber now; False if they
        are no longer pending (confirmed meanwhile, erased)."""
        return self.confirmations.send_now(subscriber_id)

    def send_due_confirmations(
        self,
        batch: int = 50,
        executor: Executor | None = None,
        *,
        worker: str | None = None,
        lease: dt.timedelta = LEASE,
        stopped: Callable[[], bool] = lambda: False,
    ) -> int:
        """Work through the confirmation queue: mail every pending subscriber
        whose signup asked for a confirmation the link of their newest
        signup, within the limits: ``per_address`` messages to one mailbox
        (more signups for it get no more mail), ``per_domain`` to one domain
        (more wait for a later window), and one in 30 days to a mailbox that
        complained or bounced. Returns how many were claimed. With
        ``executor``, several messages are in flight at once (a provider's
        API answers in 50 to 100 ms).

        The batch is claimed for ``worker`` with a ``lease``, renewed while
        it works, in one transaction with its limits; its results are
        recorded together, in one more (every second of sending, for a slow
        transport): sent, or failed and due again after a backoff, and given
        up after ``MAX_ATTEMPTS`` claims, in the subscriber's history. Should
        this process die, the messages it had not recorded are due again
        when the lease runs out, for any mailer to take up (those it had
        sent since its last record reach the reader twice). Once
        ``stopped()``, the claims not yet tried are given back, due at once."""
        return self.confirmations.send_due(
            batch, executor, worker=worker, lease=lease, stopped=stopped
        )

    # -- confirm -------------------------------------------------------------

    def confirm_target(self, token: str, now: dt.datetime | None = None) -> ConfirmTarget:
        """Who a confirmation link is for, and whether confirming would make
        them active; changes nothing. Raises what :meth:`confirm` raises."""
        link = self.signer.read_confirm_link(token, now)
        with self.store.reading() as tx:
            return confirm.target(tx, link)

    def confirm(self, token: str, origin: Origin, now: dt.datetime | None = None) -> Confirmation:
        """Make the subscriber in a confirmation link active, with the name
        and consent of the signup the link was mailed for, and record where
        the confirmation came from (``origin``).

        Raises :class:`TokenError` for a forged or expired link, or one whose
        subscriber is gone, and :class:`StaleLink` for a link whose signup no
        longer waits (the address left the list since it was mailed; only a
        new signup, with a link of its own, brings it back).
        """
        link = self.signer.read_confirm_link(token, now)
        with self.store.transaction() as tx:
            return confirm.confirm_signup(tx, link, origin)

    def send_welcome(self, subscriber_id: int) -> bool:
        """Mail the welcome, with the unsubscribe link, to an active subscriber."""
        subscriber = self.store.get(subscriber_id)
        if subscriber is None or subscriber.status != Status.ACTIVE:
            return False
        token = self.signer.unsubscribe(subscriber_id)
        self.send_mail(
            welcome_message(
                self._mail().welcome(),
                subscriber,
                self.newsletter.url(f"unsubscribe/{token}"),
                unsubscribe_mailto(token, self.newsletter.unsubscribe_domain),
            )
        )
        self.store.record_event(subscriber_id, EventKind.WELCOME_SENT)
        return True

    def _mail(self) -> ServiceMail:
        if self.mail is None:
            raise RuntimeError("these Subscriptions were made without mail: they cannot send")
        return self.mail

    # -- unsubscribe ---------------------------------------------------------

    def unsubscribe_target(self, token: str) -> Subscriber | None:
        """Who an unsubscribe link is for (None if erased). Changes nothing."""
        return self.store.get(self.signer.read_unsubscribe(token))

    def unsubscribe(self, token: str, origin: Origin, how: str) -> Subscriber | None:
        """Unsubscribe whoever the link is for, at once; harmless to repeat."""
        subscriber_id = self.signer.read_unsubscribe(token)
        return self.store.unsubscribe(subscriber_id, {"via": how, **origin.detail()})

    def give_reason(self, token: str, code: str, comment: str) -> int | None:
        """Keep why the reader of an unsubscribe link left (the send it is
        attributed to, or None). Raises :class:`TokenError` for a link not
        made here, :class:`~subscribers.leaving.BadReason` for a form that
        says nothing or too much, and :class:`~subscribers.leaving.NotUnsubscribed`
        unless the reader is unsubscribed."""
        subscriber_id = self.signer.read_unsubscribe(token)
        return leaving.record_reason(self.store, subscriber_id, leaving.read_reason(code, comment))


__all__ = [
    "LEASE",
    "MAX_ATTEMPTS",
    "ConfirmTarget",
    "Confirmation",
    "ConfirmationMailer",
    "Origin",
    "SendMail",
    "StaleLink",
    "Subscriptions",
    "TooManySignups",
    "retry_delay",
]
