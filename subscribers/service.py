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
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from subscribers.errors import TokenError, first_line
from subscribers.ledger import new_worker_id
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
from subscribers.store import ClaimedConfirmation, Store, Transaction, consent_columns
from subscribers.tokens import Signer

log = logging.getLogger(__name__)

SendMail = Callable[[EmailMessage], None]
LEASE = dt.timedelta(minutes=5)
"""How long a mailer holds the confirmations it claimed before another may
take them up; renewed while it works (see :meth:`Subscriptions.send_due_confirmations`)."""
RETRY_AFTER = dt.timedelta(minutes=1)
"""The wait after a first failed try; doubled after each one, up to RETRY_AT_MOST."""
RETRY_AT_MOST = dt.timedelta(hours=1)
MAX_ATTEMPTS = 10
"""Tries at one signup's confirmation (about four hours of them) before giving up."""
MAX_ERROR = 300


def retry_delay(attempt: int) -> dt.timedelta:
    """How long to wait after failed try number ``attempt`` (1, 2, ...)."""
    delay: dt.timedelta = RETRY_AFTER * 2 ** max(attempt - 1, 0)
    return min(delay, RETRY_AT_MOST)


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
        whose signup asked for a confirmation, at most ``per_address`` times
        an hour each (more signups for an address get no more mail). Returns
        how many were claimed. With ``executor``, several messages are in
        flight at once (a provider's API answers in 50 to 100 ms).

        The batch is claimed for ``worker`` with a ``lease``, renewed while
        it works: should this process die, the messages it had not recorded
        are due again when the lease runs out, for any mailer to take up
        (the ones in flight at that moment may reach the reader twice). Each
        result is recorded with its message: sent, or failed and due again
        after a backoff, and given up after ``MAX_ATTEMPTS`` claims, in the
        subscriber's history. Once ``stopped()``, the claims not yet tried
        are given back, due at once."""
        worker = worker or new_worker_id()
        now = utcnow()
        with self.store.transaction() as tx:
            due = tx.claim_confirmations(batch, now, worker=worker, lease=lease)
        held = _Lease(self.store, worker, lease)

        def work(claim: ClaimedConfirmation) -> None:
            if stopped():
                held.unsent.append(claim.subscriber.id)
                return
            self._confirm_queued(claim, now)
            held.renew()

        try:
            if executor is None:
                for claim in due:
                    work(claim)
            else:
                list(executor.map(work, due))
        finally:
            if held.unsent:
                with self.store.transaction() as tx:
                    tx.release_confirmations(worker, held.unsent, utcnow())
        return len(due)

    def _confirm_queued(self, claim: ClaimedConfirmation, now: dt.datetime) -> None:
        subscriber = claim.subscriber
        if claim.attempt > MAX_ATTEMPTS:  # the mailer died during the last try
            self._give_up(subscriber, claim.attempt - 1, "the mailer stopped while sending it")
            return
        window = now - dt.timedelta(seconds=self.per_address.seconds)
        recent = self.store.count_events(subscriber.id, EventKind.CONFIRMATION_SENT, window)
        if recent >= self.per_address.count:
            log.info("subscriber %d was sent %d confirmations lately", subscriber.id, recent)
            with self.store.transaction() as tx:
                tx.update(subscriber.id, confirmation_due_at=None, confirmation_claimed_by=None)
            return
        try:
            self._confirm_by_mail(subscriber)
        except Exception as exc:
            log.exception("could not mail a confirmation to subscriber %d", subscriber.id)
            self._failed(subscriber, claim.attempt, first_line(exc, MAX_ERROR))

    def _confirm_by_mail(self, subscriber: Subscriber) -> None:
        now = utcnow()
        message = confirmation_message(
            self.newsletter, subscriber, self.confirm_url(subscriber.id, now)
        )
        self.send_mail(message)
        with self.store.transaction() as tx:
            if tx.get(subscriber.id) is not None:
                tx.update(
                    subscriber.id,
                    confirmation_sent_at=now,
                    confirmation_due_at=None,
                    confirmation_claimed_by=None,
                )
                tx.add_event(subscriber.id, EventKind.CONFIRMATION_SENT, at=now)

    def _failed(self, subscriber: Subscriber, attempt: int, error: str) -> None:
        """Record a failed try: due again after a backoff, or given up."""
        if attempt >= MAX_ATTEMPTS:
            self._give_up(subscriber, attempt, error)
            return
        now = utcnow()
        retry_at = now + retry_delay(attempt)
        with self.store.transaction() as tx:
            current = tx.get(subscriber.id, lock=True)
            if current is None or current.status != Status.PENDING:
                return
            tx.update(subscriber.id, confirmation_due_at=retry_at, confirmation_claimed_by=None)
            tx.add_event(
                subscriber.id,
                EventKind.CONFIRMATION_FAILED,
                {"attempt": attempt, "error": error, "retry_at": retry_at.isoformat()},
                at=now,
            )

    def _give_up(self, subscriber: Subscriber, attempts: int, error: str) -> None:
        log.error(
            "giving up mailing a confirmation to subscriber %d after %d attempts: %s",
            subscriber.id,
            attempts,
            error,
        )
        with self.store.transaction() as tx:
            current = tx.get(subscriber.id, lock=True)
            if current is None or current.status != Status.PENDING:
                return
            tx.update(subscriber.id, confirmation_due_at=None, confirmation_claimed_by=None)
            tx.add_event(
                subscriber.id,
                EventKind.CONFIRMATION_GIVEN_UP,
                {"attempts": attempts, "error": error},
            )

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
    several mailers can share it. Each mailer claims its batches under a
    worker id of its own, with a ``lease`` (see
    :meth:`Subscriptions.send_due_confirmations`).
    """

    def __init__(
        self,
        service: Subscriptions,
        poll: float = 1.0,
        batch: int = 50,
        workers: int = 4,
        lease: dt.timedelta = LEASE,
    ) -> None:
        self.service = service
        self.poll = poll
        self.batch = batch
        self.workers = workers
        self.lease = lease
        self.worker = new_worker_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """Something may be due: look now rather than at the next poll."""
        self._wake.set()

    def run(self, stopped: Callable[[], bool] = lambda: False) -> None:
        """Send what is due, then wait for a notice or ``poll`` seconds; repeat.
        Once stopped (:meth:`stop`, ``stopped()``), the messages in hand are
        finished and the rest of the batch is given back to the queue."""

        def halted() -> bool:
            return self._stop.is_set() or stopped()

        with ThreadPoolExecutor(self.workers, thread_name_prefix="confirm") as executor:
            while not halted():
                self._wake.clear()
                try:
                    taken = self.service.send_due_confirmations(
                        self.batch, executor, worker=self.worker, lease=self.lease, stopped=halted
                    )
                except Exception:  # the database went away for a moment, say
                    log.exception("the confirmation mailer failed; trying again")
                    taken = 0
                if taken < self.batch:
                    self._wake.wait(self.poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="confirmation-mailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the messages in hand."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


class _Lease:
    """The claims of one batch: renewed as messages are done, every quarter
    of the lease, so that a slow batch keeps them; and those not tried."""

    def __init__(self, store: Store, worker: str, length: dt.timedelta) -> None:
        self.store = store
        self.worker = worker
        self.length = length
        self.unsent: list[int] = []
        self._renewed = time.monotonic()
        self._lock = threading.Lock()

    def renew(self) -> None:
        with self._lock:
            if time.monotonic() - self._renewed < self.length.total_seconds() / 4:
                return
            self._renewed = time.monotonic()
        try:
            with self.store.transaction() as tx:
                tx.extend_confirmations(self.worker, utcnow() + self.length)
        except Exception:  # the lease runs out, and another mailer may send them too
            log.exception("could not renew the lease on the confirmations in hand")


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
    changes.update(
        confirmation_due_at=consent.at, confirmation_claimed_by=None, confirmation_attempts=0
    )
    if name:
        changes["name"] = name
    if subscriber.status == Status.PENDING:
        tx.update(subscriber.id, **changes)
        tx.add_event(subscriber.id, EventKind.SUBSCRIBED, detail, at=consent.at)
    else:
        tx.set_status(subscriber, Status.PENDING, EventKind.SUBSCRIBED, detail, **changes)
    return subscriber.id
