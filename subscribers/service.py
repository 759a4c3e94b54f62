"""The subscription rules, with no HTTP in them.

Double opt-in: a form signup makes (or refreshes) a *pending* subscriber
and queues a confirmation message, which a :class:`ConfirmationMailer`
sends; only confirming its link makes them *active*, the one status that is
mailed issues. Opening the link changes nothing (mail scanners open every
link): the page it shows has a button, and pressing it confirms.

Each signup is kept on its own (a :class:`~subscribers.models.Signup`) with
the nonce its link carries and the name and consent it brings; they become
the subscriber's only when that very link is confirmed, so a stranger who
types in someone's address changes nothing of theirs. Once the subscriber is
no longer pending, every signup and so every link mailed so far is dropped:
a link from before an unsubscribe never confirms a later signup.

The answer to a signup never depends on whether the address was known.
Signups are limited per client network (:func:`subscribers.limits.network`),
and confirmation messages per mailbox (``Victim+1@`` is ``victim@``), per
domain (the rest wait their turn) and to once in 30 days for a mailbox that
complained or bounced; the counts are in the database, shared by every
process (``limits.py``).

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
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from subscribers.errors import SubscriberError, TokenError, first_line
from subscribers.ledger import new_worker_id
from subscribers.limits import Bucket, Taken, network
from subscribers.mail import confirmation_message, welcome_message
from subscribers.models import (
    CONFIRMATIONS_AFTER_REPORT,
    CONFIRMATIONS_PER_ADDRESS,
    CONFIRMATIONS_PER_DOMAIN,
    MAX_IP,
    MAX_USER_AGENT,
    Consent,
    EventKind,
    Limit,
    Newsletter,
    Signup,
    Source,
    Status,
    Subscriber,
    SuppressionReason,
    clean_name,
    clip,
    mailbox_domain,
    mailbox_key,
    normalize_email,
    utcnow,
)
from subscribers.store import ClaimedConfirmation, Store, Transaction
from subscribers.store.rows import consent_columns
from subscribers.tokens import CONFIRM_LIFETIME, ConfirmLink, Signer, new_signup_nonce

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
    """A genuine confirmation link whose signup no longer waits for it: the
    address left the list since (and maybe signed up again, with links of
    its own)."""


class TooManySignups(SubscriberError):
    """Too many signups came from the client's network lately."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many signups from this network; try again later")
        self.retry_after = retry_after


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


@dataclass(frozen=True)
class ConfirmTarget:
    """Who a confirmation link is for, as its page shows it (nothing changed)."""

    subscriber: Subscriber
    pending: bool
    """True if pressing the button would confirm; False if already active."""


class Subscriptions:
    """Subscribe, confirm and unsubscribe, as a reader does it from the web."""

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
    ) -> None:
        self.store = store
        self.signer = signer
        self.newsletter = newsletter
        self.send_mail = send_mail
        self.per_address = per_address
        """Confirmation messages to one mailbox (``mailbox_key``); more are dropped."""
        self.per_domain = per_domain
        """Confirmation messages to one domain; more wait for a later window."""
        self.per_network = per_network
        """Signups from one client network (the web form's); more are refused."""

    def confirm_url(
        self, subscriber_id: int, signup: str, issued_at: dt.datetime | None = None
    ) -> str:
        token = self.signer.confirm(subscriber_id, issued_at, signup=signup)
        return self.newsletter.url(f"confirm/{token}")

    def unsubscribe_url(self, subscriber_id: int) -> str:
        return self.newsletter.url(f"unsubscribe/{self.signer.unsubscribe(subscriber_id)}")

    # -- subscribe -----------------------------------------------------------

    def subscribe(self, email: str, name: str, *, consent_text: str, origin: Origin) -> int | None:
        """Record a signup; the subscriber's id if a confirmation is now
        queued for them, else None.

        New, pending or departed addresses become pending, this signup is
        kept with its name and consent (the subscriber's once confirmed),
        and their confirmation is queued (see :meth:`send_due_confirmations`).
        An active subscriber is left alone (nobody can change their name or
        status by knowing their address), and so is a pending or departed
        one's name and consent. Raises :class:`InvalidEmail` for a malformed
        address, and :class:`TooManySignups` when ``per_network`` signups
        came from ``origin``'s network lately (nothing is recorded then).
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
        per_network = self.per_network

        def work(tx: Transaction) -> int | None:
            if per_network is not None:
                bucket = Bucket("ip", network(origin.ip), per_network)
                if not tx.take_limits([bucket], now).allowed:
                    raise TooManySignups(per_network.seconds)
            return _subscribe(tx, address, display_name, consent, detail)

        return self.store.retrying(work)

    def send_confirmation(self, subscriber_id: int) -> bool:
        """Mail a confirmation link to a pending subscriber now; False if they
        are no longer pending (confirmed meanwhile, erased)."""
        subscriber = self.store.get(subscriber_id)
        if subscriber is None or subscriber.status != Status.PENDING:
            return False
        now = utcnow()
        with self.store.transaction() as tx:
            signup = _signup_to_mail(tx, subscriber, now)
        self._mail(subscriber, signup, now)
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
        whose signup asked for a confirmation the link of their newest
        signup, within the limits: ``per_address`` messages to one mailbox
        (more signups for it get no more mail), ``per_domain`` to one domain
        (more wait for a later window), and one in 30 days to a mailbox that
        complained or bounced. Returns how many were claimed. With
        ``executor``, several messages are in flight at once (a provider's
        API answers in 50 to 100 ms).

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
            self._confirm_queued(claim)
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

    def _confirm_queued(self, claim: ClaimedConfirmation) -> None:
        subscriber = claim.subscriber
        if claim.attempt > MAX_ATTEMPTS:  # the mailer died during the last try
            self._give_up(subscriber, claim.attempt - 1, "the mailer stopped while sending it")
            return
        now = utcnow()
        mailbox = mailbox_key(subscriber.email)
        buckets = [Bucket("mailbox", mailbox, self.per_address)]
        if self.per_domain is not None:
            buckets.append(Bucket("domain", mailbox_domain(mailbox), self.per_domain))
        with self.store.transaction() as tx:
            if tx.mailbox_was_reported(mailbox) or (
                tx.suppression(subscriber.email) == SuppressionReason.COMPLAINED
            ):
                buckets.append(Bucket("reported", mailbox, CONFIRMATIONS_AFTER_REPORT))
            taken = tx.take_limits(buckets, now)
            if taken.allowed:
                signup = _signup_to_mail(tx, subscriber, now)
            elif all(bucket.kind == "domain" for bucket in taken.denied):
                # A burst to one domain: this one waits for a later window.
                (bucket,) = taken.denied
                due = bucket.window_end(now) + dt.timedelta(
                    seconds=random.uniform(0, bucket.seconds)  # noqa: S311 - spreading, not secrets
                )
                tx.update(
                    subscriber.id,
                    confirmation_due_at=due,
                    confirmation_claimed_by=None,
                    confirmation_attempts=max(claim.attempt - 1, 0),
                )
            else:  # enough mail went to this mailbox: this signup gets none
                tx.update(subscriber.id, confirmation_due_at=None, confirmation_claimed_by=None)
        if not taken.allowed:
            log.info(
                "no confirmation for subscriber %d now: %s limit reached",
                subscriber.id,
                ", ".join(bucket.kind for bucket in taken.denied),
            )
            return
        try:
            self._mail(subscriber, signup, now)
        except Exception as exc:
            log.exception("could not mail a confirmation to subscriber %d", subscriber.id)
            self._failed(subscriber, claim.attempt, first_line(exc, MAX_ERROR), taken)

    def _mail(self, subscriber: Subscriber, signup: Signup, now: dt.datetime) -> None:
        """Send the confirmation message for ``signup`` and record it."""
        message = confirmation_message(
            self.newsletter, subscriber, self.confirm_url(subscriber.id, signup.nonce, now)
        )
        self.send_mail(message)
        with self.store.transaction() as tx:
            if tx.get(subscriber.id) is not None:
                latest = tx.latest_signup(subscriber.id)
                # A newer signup while this one was being sent stays queued.
                done = latest is None or latest.id == signup.id
                queue = {"confirmation_due_at": None, "confirmation_claimed_by": None}
                tx.update(subscriber.id, confirmation_sent_at=now, **(queue if done else {}))
                tx.add_event(subscriber.id, EventKind.CONFIRMATION_SENT, at=now)

    def _failed(
        self, subscriber: Subscriber, attempt: int, error: str, taken: Taken | None = None
    ) -> None:
        """Record a failed try: due again after a backoff, or given up. The
        limits it counted against are given back: nothing was sent."""
        if taken is not None:
            with self.store.transaction() as tx:
                tx.give_back_limits(taken)
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

    def confirm_target(self, token: str, now: dt.datetime | None = None) -> ConfirmTarget:
        """Who a confirmation link is for, and whether confirming would make
        them active; changes nothing. Raises what :meth:`confirm` raises."""
        link = self.signer.read_confirm_link(token, now)
        with self.store.reading() as tx:
            subscriber, signup = _waiting_signup(tx, link)
        return ConfirmTarget(subscriber, pending=signup is not None)

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


def _signup_to_mail(tx: Transaction, subscriber: Subscriber, now: dt.datetime) -> Signup:
    """The signup whose link a confirmation message for ``subscriber`` carries
    (their newest), noted as mailed from now on, so that a signup coming in
    while it is sent does not drop it. A pending subscriber who never used
    the form (an import, the editor) gets one with their own name and consent."""
    signup = tx.latest_signup(subscriber.id)
    if signup is None:
        consent = subscriber.consent
        signup = tx.add_signup(
            subscriber.id,
            new_signup_nonce(),
            subscriber.name,
            Consent(
                at=consent.at or now, ip=consent.ip, user_agent=consent.user_agent,
                text=consent.text,
            ),
        )
    tx.signup_mailed(signup.id, now)
    return signup


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
