"""The subscription rules, with no HTTP in them.

Double opt-in: a form signup makes (or refreshes) a *pending* subscriber
and queues a confirmation message, which a :class:`ConfirmationMailer`
sends; only following its link makes them *active*, the one status that is
mailed issues. The answer to a signup never depends on whether the address
was known, and an address gets at most a few confirmations an hour however
often it is entered.

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
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from subscribers.errors import TokenError
from subscribers.mail import confirmation_message, welcome_message
from subscribers.models import (
    CONFIRMATIONS_PER_ADDRESS,
    MAX_IP,
    MAX_USER_AGENT,
    Consent,
    EventKind,
    Limit,
    Newsletter,
    Source,
    Status,
    Subscriber,
    clean_name,
    clip,
    normalize_email,
    utcnow,
)
from subscribers.store import Store, Transaction, consent_columns
from subscribers.tokens import Signer

log = logging.getLogger(__name__)

SendMail = Callable[[EmailMessage], None]
RETRY_AFTER = dt.timedelta(minutes=1)
RETRY_FOR = dt.timedelta(days=1)


class StaleLink(TokenError):
    """A genuine confirmation link from before the reader left the list."""


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


@dataclass(frozen=True)
class Confirmation:
    subscriber: Subscriber
    new: bool
    """False when the subscriber had already confirmed (the link was reused)."""


class Subscriptions:
    """Subscribe, confirm and unsubscribe, as a reader does it from the web."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        newsletter: Newsletter,
        send_mail: SendMail,
        per_address: Limit = CONFIRMATIONS_PER_ADDRESS,
    ) -> None:
        self.store = store
        self.signer = signer
        self.newsletter = newsletter
        self.send_mail = send_mail
        self.per_address = per_address

    def confirm_url(self, subscriber_id: int, issued_at: dt.datetime | None = None) -> str:
        return self.newsletter.url(f"confirm/{self.signer.confirm(subscriber_id, issued_at)}")

    def unsubscribe_url(self, subscriber_id: int) -> str:
        return self.newsletter.url(f"unsubscribe/{self.signer.unsubscribe(subscriber_id)}")

    # -- subscribe -----------------------------------------------------------

    def subscribe(self, email: str, name: str, *, consent_text: str, origin: Origin) -> int | None:
        """Record a signup; the subscriber's id if a confirmation is now
        queued for them, else None.

        New, pending or departed addresses become pending with this consent
        record, and their confirmation is queued (see
        :meth:`send_due_confirmations`). An active subscriber is left alone
        (nobody can change their name or status by knowing their address).
        Raises :class:`InvalidEmail` for a malformed address.
        """
        address = normalize_email(email)
        display_name = clean_name(name)
        now = utcnow()
        consent = Consent(
            at=now,
            ip=origin.ip,
            user_agent=origin.user_agent,
            text=consent_text,
        )
        detail = {"source": str(Source.FORM), **origin.detail()}
        return self.store.retrying(
            lambda tx: _subscribe(tx, address, display_name, consent, detail)
        )

    def send_confirmation(self, subscriber_id: int) -> bool:
        """Mail a confirmation link to a pending subscriber now; False if they
        are no longer pending (confirmed meanwhile, erased)."""
        subscriber = self.store.get(subscriber_id)
        if subscriber is None or subscriber.status != Status.PENDING:
            return False
        self._confirm_by_mail(subscriber)
        return True

    def send_due_confirmations(self, batch: int = 50, executor: Executor | None = None) -> int:
        """Work through the confirmation queue: mail every pending subscriber
        whose signup asked for a confirmation, at most ``per_address`` times
        an hour each (more signups for an address get no more mail). Returns
        how many were taken off the queue; a message that could not be sent
        goes back on it for a later try. With ``executor``, several messages
        are in flight at once (a provider's API answers in 50 to 100 ms)."""
        now = utcnow()
        with self.store.transaction() as tx:
            due = tx.claim_confirmations(batch, now)
        if executor is None:
            for subscriber in due:
                self._confirm_queued(subscriber, now)
        else:
            list(executor.map(lambda subscriber: self._confirm_queued(subscriber, now), due))
        return len(due)

    def _confirm_queued(self, subscriber: Subscriber, now: dt.datetime) -> None:
        window = now - dt.timedelta(seconds=self.per_address.seconds)
        recent = self.store.count_events(subscriber.id, EventKind.CONFIRMATION_SENT, window)
        if recent >= self.per_address.count:
            log.info("subscriber %d was sent %d confirmations lately", subscriber.id, recent)
            return
        try:
            self._confirm_by_mail(subscriber)
        except Exception:
            log.exception("could not mail a confirmation to subscriber %d", subscriber.id)
            self._retry_later(subscriber, now)

    def _confirm_by_mail(self, subscriber: Subscriber) -> None:
        now = utcnow()
        message = confirmation_message(
            self.newsletter, subscriber, self.confirm_url(subscriber.id, now)
        )
        self.send_mail(message)
        with self.store.transaction() as tx:
            if tx.get(subscriber.id) is not None:
                tx.update(subscriber.id, confirmation_sent_at=now, confirmation_due_at=None)
                tx.add_event(subscriber.id, EventKind.CONFIRMATION_SENT, at=now)

    def _retry_later(self, subscriber: Subscriber, now: dt.datetime) -> None:
        consent_at = subscriber.consent.at or now
        if now - consent_at > RETRY_FOR:
            log.error("giving up mailing a confirmation to subscriber %d", subscriber.id)
            return
        with self.store.transaction() as tx:
            current = tx.get(subscriber.id, lock=True)
            if current is not None and current.status == Status.PENDING:
                tx.update(subscriber.id, confirmation_due_at=now + RETRY_AFTER)

    # -- confirm -------------------------------------------------------------

    def confirm(self, token: str, origin: Origin, now: dt.datetime | None = None) -> Confirmation:
        """Make the subscriber in a confirmation link active.

        Raises :class:`TokenError` for a forged or expired link, or one whose
        subscriber is gone, and :class:`StaleLink` for a link from before the
        reader unsubscribed (only a new signup brings them back).
        """
        subscriber_id = self.signer.read_confirm(token, now)
        with self.store.transaction() as tx:
            subscriber = tx.get(subscriber_id, lock=True)
            if subscriber is None:
                raise TokenError(
                    "this confirmation link is no longer valid; please subscribe again"
                )
            if subscriber.status == Status.ACTIVE:
                return Confirmation(subscriber, new=False)
            if subscriber.status != Status.PENDING:
                raise StaleLink(
                    "this confirmation link is from before you left the list; "
                    "please subscribe again"
                )
            confirmed = tx.set_status(
                subscriber,
                Status.ACTIVE,
                EventKind.CONFIRMED,
                origin.detail(),
                confirmed_at=utcnow(),
                confirmed_ip=origin.ip,
                confirmed_user_agent=origin.user_agent,
            )
            if tx.lift_suppression(subscriber.email):
                log.info("subscriber %d confirmed anew; suppression lifted", subscriber.id)
            return Confirmation(confirmed, new=True)

    def send_welcome(self, subscriber_id: int) -> bool:
        """Mail the welcome, with the unsubscribe link, to an active subscriber."""
        subscriber = self.store.get(subscriber_id)
        if subscriber is None or subscriber.status != Status.ACTIVE:
            return False
        self.send_mail(
            welcome_message(self.newsletter, subscriber, self.unsubscribe_url(subscriber_id))
        )
        self.store.record_event(subscriber_id, EventKind.WELCOME_SENT)
        return True

    # -- unsubscribe ---------------------------------------------------------

    def unsubscribe_target(self, token: str) -> Subscriber | None:
        """Who an unsubscribe link is for (None if erased). Changes nothing."""
        return self.store.get(self.signer.read_unsubscribe(token))

    def unsubscribe(self, token: str, origin: Origin, how: str) -> Subscriber | None:
        """Unsubscribe whoever the link is for, at once; harmless to repeat."""
        subscriber_id = self.signer.read_unsubscribe(token)
        return self.store.unsubscribe(subscriber_id, {"via": how, **origin.detail()})


class ConfirmationMailer:
    """Works through the confirmation queue until stopped.

    The web service runs one in a thread and wakes it after each signup;
    `publish serve` runs one in a process of its own, so that building and
    sending mail never competes with answering requests. Either way the
    queue is in the database: a signup is never lost to a crash, and
    several mailers can share it.
    """

    def __init__(
        self, service: Subscriptions, poll: float = 1.0, batch: int = 50, workers: int = 4
    ) -> None:
        self.service = service
        self.poll = poll
        self.batch = batch
        self.workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """Something may be due: look now rather than at the next poll."""
        self._wake.set()

    def run(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Send what is due, then wait for a notice or ``poll`` seconds; repeat."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="confirm") as executor:
            while not self._stop.is_set() and not stopped():
                self._wake.clear()
                try:
                    taken = self.service.send_due_confirmations(self.batch, executor)
                except Exception:  # the database went away for a moment, say
                    log.exception("the confirmation mailer failed; trying again")
                    taken = 0
                if taken < self.batch:
                    self._wake.wait(self.poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="confirmation-mailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the message in hand."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _subscribe(
    tx: Transaction, address: str, name: str, consent: Consent, detail: dict[str, Any]
) -> int | None:
    subscriber = tx.get_by_email(address, lock=True)
    if subscriber is None:
        created = tx.insert(
            address,
            name=name,
            status=Status.PENDING,
            source=Source.FORM,
            consent=consent,
            confirmation_due_at=consent.at,
        )
        tx.add_event(created.id, EventKind.SUBSCRIBED, detail, at=consent.at)
        return created.id
    if subscriber.status == Status.ACTIVE:
        return None
    changes = consent_columns(consent)
    changes["confirmation_due_at"] = consent.at
    if name:
        changes["name"] = name
    if subscriber.status == Status.PENDING:
        tx.update(subscriber.id, **changes)
        tx.add_event(subscriber.id, EventKind.SUBSCRIBED, detail, at=consent.at)
    else:
        tx.set_status(subscriber, Status.PENDING, EventKind.SUBSCRIBED, detail, **changes)
    return subscriber.id
