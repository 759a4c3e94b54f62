"""The subscription rules: double opt-in, consent, unsubscribe, suppression,
and what an import may and may not change."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from subscribers.errors import InvalidEmail, TokenError
from subscribers.imports import Action, import_subscribers, plan_import
from subscribers.mail_template import OutgoingMessage
from subscribers.models import Candidate, EventKind, Limit, Newsletter, Source, Status, Subscriber
from subscribers.schema import subscribers
from subscribers.service import Origin, StaleLink, Subscriptions
from subscribers.store import Store
from subscribers.tokens import ExpiredToken, Signer
from tests.support.mail import service_mail

NEWSLETTER = Newsletter(
    name="Pain Free Living",
    site_url="https://painfreeliving.example.com",
    sender="Pain Free Living <newsletter@painfreeliving.example.com>",
    reply_to="Dana Whitfield <dana@painfreeliving.example.com>",
    postal_address="1200 Harbor Street, Portland, ME 04101, USA",
)
MAIL = service_mail(NEWSLETTER)
WORDING = "Yes, send me Pain Free Living by email."
BROWSER = Origin(ip="192.0.2.10", user_agent="Mozilla/5.0 (test)")


class Mailbox:
    """Collects what the service sends, as the bytes a transport would get."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    def __call__(self, message: OutgoingMessage) -> None:
        parsed = message_from_bytes(message.raw, policy=policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]

    def link(self, index: int = -1, kind: str = "confirm") -> str:
        body = self.messages[index].get_body(("plain",))
        assert body is not None
        text = body.get_content()
        match = re.search(rf"https://painfreeliving\.example\.com/{kind}/(\S+)", text)
        assert match, text
        return match.group(1)


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def service(store: Store, mailbox: Mailbox) -> Subscriptions:
    return Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, mailbox, mail=MAIL
    )


def signup(service: Subscriptions, email: str, name: str = "") -> int:
    """Sign up as the form does; the subscriber's id (they must be mailed)."""
    subscriber_id = service.subscribe(email, name, consent_text=WORDING, origin=BROWSER)
    assert subscriber_id is not None
    service.send_confirmation(subscriber_id)
    return subscriber_id


def kinds(store: Store, subscriber: Subscriber | int) -> list[str]:
    subscriber_id = subscriber if isinstance(subscriber, int) else subscriber.id
    return [event.kind for event in store.history(subscriber_id)]


def test_signup_makes_a_pending_subscriber_with_a_consent_record(service, store, mailbox):
    subscriber_id = signup(service, "Sam@Example.com", "Sam  Reader")
    sam = store.get(subscriber_id)
    assert sam.status == Status.PENDING and sam.email == "Sam@example.com"
    assert sam.name == "Sam Reader"
    consent = sam.consent
    assert (consent.ip, consent.user_agent, consent.text) == (
        "192.0.2.10", "Mozilla/5.0 (test)", WORDING,
    )
    assert consent.at is not None and sam.confirmation_sent_at is not None
    assert kinds(store, sam) == ["subscribed", "confirmation_sent"]

    (message,) = mailbox.messages
    assert message["To"].addresses[0].addr_spec == "Sam@example.com"
    assert message["From"].addresses[0].addr_spec == "newsletter@painfreeliving.example.com"
    assert message["Reply-To"].addresses[0].addr_spec == "dana@painfreeliving.example.com"
    assert message["Message-ID"].endswith("@painfreeliving.example.com>")
    assert "List-Unsubscribe" not in message  # nothing to leave yet
    html = message.get_body(("html",)).get_content()
    assert f"/confirm/{mailbox.link()}" in html


def test_confirming_activates_once_and_records_where_from(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    token = mailbox.link()
    at_phone = Origin(ip="198.51.100.7", user_agent="Phone/1.0")

    result = service.confirm(token, at_phone)
    assert result.new and result.subscriber.status == Status.ACTIVE
    consent = result.subscriber.consent
    assert (consent.confirmed_ip, consent.confirmed_user_agent) == ("198.51.100.7", "Phone/1.0")
    assert consent.confirmed_at is not None

    again = service.confirm(token, at_phone)
    assert not again.new and again.subscriber == result.subscriber
    assert kinds(store, subscriber_id) == ["subscribed", "confirmation_sent", "confirmed"]


def test_the_welcome_carries_the_one_click_unsubscribe_headers(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com", "Sam")
    service.confirm(mailbox.link(), BROWSER)
    assert service.send_welcome(subscriber_id)
    welcome = mailbox.messages[-1]
    token = service.signer.unsubscribe(subscriber_id)
    # No unsubscribe domain: the link alone, never the editor's mailbox.
    assert welcome["List-Unsubscribe"].strip() == (
        f"<https://painfreeliving.example.com/unsubscribe/{token}>"
    )
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mailbox.link(kind="unsubscribe") == token
    assert "Hi Sam," in welcome.get_body(("plain",)).get_content()
    assert kinds(store, subscriber_id)[-1] == "welcome_sent"


def test_a_name_cannot_inject_headers(service, mailbox):
    signup(service, "sam@example.com", "Sam\r\nBcc: victim@example.com")
    raw = mailbox.messages[0].as_bytes()
    assert b"\nBcc:" not in raw and b"\r\nBcc" not in raw


def test_signing_up_an_active_subscriber_changes_and_sends_nothing(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com", "Sam")
    service.confirm(mailbox.link(), BROWSER)
    before = store.get(subscriber_id)
    assert service.subscribe(
        "SAM@example.com", "Somebody Else", consent_text=WORDING, origin=BROWSER
    ) is None
    assert store.get(subscriber_id) == before
    assert len(mailbox.messages) == 1


def test_signing_up_again_while_pending_keeps_the_record_until_its_link_is_confirmed(
    service, store, mailbox
):
    subscriber_id = signup(service, "sam@example.com", "Sam")
    first_link = mailbox.link()
    again = service.subscribe(
        "sam@example.com", "You won a prize: https://evil.example", consent_text="New wording",
        origin=Origin(ip="203.0.113.1"),
    )
    assert again == subscriber_id
    sam = store.get(subscriber_id)  # a stranger's signup changes nothing of Sam's
    assert sam.consent.text == WORDING and sam.consent.ip == "192.0.2.10"
    assert sam.name == "Sam" and sam.status == Status.PENDING
    service.send_confirmation(subscriber_id)
    second_link = mailbox.link()
    assert second_link != first_link
    assert "evil" not in mailbox.messages[-1].as_string()

    # Each link confirms its own signup: Sam's keeps Sam's name and consent...
    confirmed = service.confirm(first_link, BROWSER).subscriber
    assert confirmed.name == "Sam" and confirmed.consent.text == WORDING
    assert confirmed.consent.ip == "192.0.2.10"
    assert store.signups(subscriber_id) == []  # and no other link confirms anything now
    assert not service.confirm(second_link, BROWSER).new


def test_confirming_the_newer_signup_applies_its_name_and_consent(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com", "Sam")
    service.subscribe(
        "sam@example.com", "Samantha", consent_text="New wording", origin=Origin(ip="203.0.113.1")
    )
    service.send_confirmation(subscriber_id)
    confirmed = service.confirm(mailbox.link(), Origin(ip="198.51.100.7")).subscriber
    assert confirmed.name == "Samantha" and confirmed.status == Status.ACTIVE
    assert (confirmed.consent.text, confirmed.consent.ip) == ("New wording", "203.0.113.1")
    assert confirmed.consent.confirmed_ip == "198.51.100.7"


def test_a_name_only_a_strangers_signup_gave_is_never_kept(service, store, mailbox):
    """A stranger signs the address up first, with a name; the reader signs up
    without one and confirms their own link: no greeting by the stranger's text."""
    subscriber_id = signup(service, "sam@example.com", "Winner")
    service.subscribe("sam@example.com", "", consent_text=WORDING, origin=BROWSER)
    service.send_confirmation(subscriber_id)
    assert service.confirm(mailbox.link(), BROWSER).subscriber.name == ""


def test_a_link_mailed_before_an_unsubscribe_never_confirms_a_later_signup(
    service, store, mailbox
):
    subscriber_id = signup(service, "sam@example.com")
    old_link = mailbox.link()
    service.unsubscribe(service.signer.unsubscribe(subscriber_id), BROWSER, "test")
    # Somebody else signs the address up again; a new link goes to the inbox.
    service.subscribe("sam@example.com", "", consent_text=WORDING, origin=Origin(ip="203.0.113.9"))
    service.send_confirmation(subscriber_id)
    new_link = mailbox.link()
    with pytest.raises(StaleLink, match="out of date"):
        service.confirm(old_link, BROWSER)
    with pytest.raises(StaleLink, match="out of date"):
        service.confirm_target(old_link)
    assert store.get(subscriber_id).status == Status.PENDING
    assert service.confirm_target(new_link).pending
    assert service.confirm(new_link, BROWSER).new


def test_links_from_before_signups_had_nonces_still_confirm_their_signup(service, store):
    """The migration gives each pending subscriber a signup with an empty
    nonce: the links already mailed to them carry none."""
    subscriber_id = service.subscribe("old@example.com", "", consent_text=WORDING, origin=BROWSER)
    with store.transaction() as tx:
        tx.drop_signups(subscriber_id)
        tx.add_signup(subscriber_id, "", "Old", store.get(subscriber_id).consent)
    legacy = service.signer.confirm(subscriber_id)
    assert legacy.count(".") == 2
    assert service.confirm(legacy, BROWSER).subscriber.name == "Old"


def test_a_malformed_address_is_refused_and_changes_nothing(service, store):
    with pytest.raises(InvalidEmail):
        service.subscribe("not-an-address", "", consent_text=WORDING, origin=BROWSER)
    assert store.count() == 0


def test_an_expired_confirmation_link_changes_nothing(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    token = mailbox.link()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    with pytest.raises(ExpiredToken):
        service.confirm(token, BROWSER, now=later)
    assert store.get(subscriber_id).status == Status.PENDING


def test_a_forged_confirmation_link_changes_nothing(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    forged = Signer("some-other-secret-0123456789").confirm(subscriber_id)
    with pytest.raises(TokenError):
        service.confirm(forged, BROWSER)
    assert store.get(subscriber_id).status == Status.PENDING


def test_an_old_confirmation_link_does_not_undo_an_unsubscribe(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    token = mailbox.link()
    service.confirm(token, BROWSER)
    service.unsubscribe(service.signer.unsubscribe(subscriber_id), BROWSER, "test")
    with pytest.raises(StaleLink):
        service.confirm(token, BROWSER)
    assert store.get(subscriber_id).status == Status.UNSUBSCRIBED


def test_a_reader_who_left_can_come_back_through_the_form(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    service.confirm(mailbox.link(), BROWSER)
    service.unsubscribe(service.signer.unsubscribe(subscriber_id), BROWSER, "test")
    assert signup(service, "sam@example.com") == subscriber_id
    assert store.get(subscriber_id).status == Status.PENDING
    assert service.confirm(mailbox.link(), BROWSER).new
    assert store.get(subscriber_id).status == Status.ACTIVE


def test_unsubscribe_links_work_once_and_then_are_harmless(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    service.confirm(mailbox.link(), BROWSER)
    token = service.signer.unsubscribe(subscriber_id)
    assert service.unsubscribe_target(token).status == Status.ACTIVE  # reading changes nothing
    first = service.unsubscribe(token, BROWSER, "one-click")
    second = service.unsubscribe(token, BROWSER, "one-click")
    assert first.status == second.status == Status.UNSUBSCRIBED
    assert kinds(store, subscriber_id).count("unsubscribed") == 1
    event = store.history(subscriber_id)[-1]
    assert event.detail["via"] == "one-click" and event.detail["ip"] == "192.0.2.10"
    with pytest.raises(TokenError):
        service.unsubscribe(token[:-2] + "xx", BROWSER, "one-click")


def test_an_erased_address_comes_back_only_by_confirming(service, store, mailbox):
    subscriber_id = signup(service, "sam@example.com")
    old_link = mailbox.link()
    store.erase("sam@example.com")
    assert store.signups(subscriber_id) == []  # nothing of the signup is kept
    with pytest.raises(TokenError):
        service.confirm(old_link, BROWSER)  # the person it was for is gone
    assert service.unsubscribe(service.signer.unsubscribe(subscriber_id), BROWSER, "x") is None

    # An import never brings it back...
    report = import_subscribers(store, [Candidate("sam@example.com", line=2)], label="list.csv")
    assert report.added == 0 and [p.line for p in report.suppressed] == [2]
    assert store.get_by_email("sam@example.com") is None

    # ...the form makes a pending row, still suppressed until confirmed...
    new_id = signup(service, "sam@example.com")
    assert store.get(new_id).status == Status.PENDING
    assert store.suppression("sam@example.com") == "erased"
    report = import_subscribers(
        store, [Candidate("sam@example.com", line=2)], reactivate=True, label="list.csv"
    )
    assert report.reactivated == 0 and len(report.suppressed) == 1
    assert store.get(new_id).status == Status.PENDING

    # ...and confirming is the new consent that lifts it.
    service.confirm(mailbox.link(), BROWSER)
    assert store.get(new_id).status == Status.ACTIVE
    assert store.suppression("sam@example.com") is None


def test_a_complaint_is_never_undone_by_an_import(service, store, mailbox):
    reader = store.add("sam@example.com")
    store.record_event(reader.id, EventKind.COMPLAINED, status=Status.COMPLAINED)
    for reactivate in (False, True):
        report = import_subscribers(
            store, [Candidate("sam@example.com", line=5)], reactivate=reactivate
        )
        assert report.reactivated == 0
        assert store.get(reader.id).status == Status.COMPLAINED
    # The reader themselves can come back, by confirming.
    signup(service, "sam@example.com")
    service.confirm(mailbox.link(), BROWSER)
    assert store.get(reader.id).status == Status.ACTIVE
    assert store.suppression("sam@example.com") is None


def test_two_signups_for_a_new_address_at_once_make_one_subscriber(service, store):
    results: list[int | None] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(
            service.subscribe("race@example.com", "", consent_text=WORDING, origin=BROWSER)
        )

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4 and len(set(results)) == 1
    assert store.count() == 1


# -- what an import does to one row ---------------------------------------------

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def existing(status: Status, name: str = "Sam") -> Subscriber:
    return Subscriber(
        id=1, email="sam@example.com", name=name, status=status, source=Source.FORM,
        created_at=NOW, updated_at=NOW,
    )


A, P, U, B, C = (
    Status.ACTIVE, Status.PENDING, Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED,
)


@pytest.mark.parametrize(
    ("current", "row", "suppressed", "reactivate", "action", "status"),
    [
        (None, A, None, False, Action.ADD, A),
        (None, U, None, False, Action.ADD, U),
        (None, A, "erased", True, Action.SUPPRESSED, None),
        (None, U, "erased", False, Action.ADD, U),  # recording "do not mail" is fine
        (A, A, None, False, Action.UNCHANGED, None),
        (A, P, None, False, Action.UNCHANGED, None),  # never lowered to pending
        (A, U, None, False, Action.UPDATE, U),  # left elsewhere: honoured
        (A, C, None, False, Action.UPDATE, C),
        (U, B, None, False, Action.UNCHANGED, None),
        (U, C, None, False, Action.UPDATE, C),
        (U, A, None, False, Action.KEEP, None),
        (B, A, None, False, Action.KEEP, None),
        (P, A, None, False, Action.KEEP, None),
        (U, A, None, True, Action.REACTIVATE, A),
        (B, A, None, True, Action.REACTIVATE, A),
        (P, A, None, True, Action.REACTIVATE, A),
        (C, A, "complained", True, Action.SUPPRESSED, None),
        (C, A, None, True, Action.SUPPRESSED, None),
        (P, A, "erased", True, Action.SUPPRESSED, None),
    ],
)
def test_import_rules(current, row, suppressed, reactivate, action, status):
    plan = plan_import(
        existing(current) if current else None,
        Candidate("sam@example.com", status=row, name="Sam"),
        suppressed,
        reactivate,
    )
    assert plan.action is action
    if action is not Action.ADD:
        assert plan.status == status


def test_an_import_may_change_a_name_but_not_raise_a_status():
    plan = plan_import(
        existing(U, name="Old"), Candidate("sam@example.com", name="New"), None, False
    )
    assert plan.action is Action.UPDATE and plan.name == "New" and plan.status is None


# -- the confirmation queue -----------------------------------------------------


def test_a_signup_queues_its_confirmation_and_the_mailer_sends_it(service, store, mailbox):
    subscriber_id = service.subscribe("q@example.com", "", consent_text=WORDING, origin=BROWSER)
    assert subscriber_id is not None and mailbox.messages == []
    assert service.send_due_confirmations() == 1
    assert len(mailbox.messages) == 1
    assert service.send_due_confirmations() == 0  # nothing is sent twice
    assert kinds(store, subscriber_id) == ["subscribed", "confirmation_sent"]


def test_an_address_gets_few_confirmations_however_often_it_is_entered(store, mailbox):
    limited = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, mailbox, Limit(2, 3600), mail=MAIL
    )
    for _ in range(5):
        limited.subscribe("victim@example.com", "", consent_text=WORDING, origin=BROWSER)
        limited.send_due_confirmations()
    assert len(mailbox.messages) == 2


def test_a_failed_confirmation_is_retried_later_not_lost(store, mailbox):
    calls: list[OutgoingMessage] = []

    def broken(message: OutgoingMessage) -> None:
        calls.append(message)
        raise OSError("relay down")

    failing = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, broken, mail=MAIL
    )
    subscriber_id = failing.subscribe("r@example.com", "", consent_text=WORDING, origin=BROWSER)
    assert subscriber_id is not None
    assert failing.send_due_confirmations() == 1 and len(calls) == 1
    assert failing.send_due_confirmations() == 0  # not due again at once
    assert kinds(store, subscriber_id) == ["subscribed", "confirmation_failed"]
    # A minute later it is due again, and a working relay delivers it.
    working = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, mailbox, mail=MAIL
    )
    with store.engine.begin() as conn:
        conn.execute(subscribers.update().values(confirmation_due_at=dt.datetime.now(dt.UTC)))
    assert working.send_due_confirmations() == 1 and len(mailbox.messages) == 1


def test_confirming_before_the_mail_goes_takes_it_off_the_queue(service, store, mailbox):
    subscriber_id = service.subscribe("c@example.com", "", consent_text=WORDING, origin=BROWSER)
    (waiting,) = store.signups(subscriber_id)
    service.confirm(service.signer.confirm(subscriber_id, signup=waiting.nonce), BROWSER)
    assert service.send_due_confirmations() == 0 and mailbox.messages == []


def test_the_mailer_thread_sends_when_notified_and_stops(service, store, mailbox):
    from subscribers.service import ConfirmationMailer

    mailer = ConfirmationMailer(service, poll=60)
    mailer.start()
    try:
        service.subscribe("t@example.com", "", consent_text=WORDING, origin=BROWSER)
        mailer.notify()
        deadline = time.monotonic() + 20
        while not mailbox.messages:
            assert time.monotonic() < deadline, "the mailer sent nothing"
            time.sleep(0.01)
    finally:
        mailer.stop()
    assert mailer._thread is not None and not mailer._thread.is_alive()


# -- claims with a lease, retries, giving up ------------------------------------


def queued(service: Subscriptions, *emails: str) -> list[int]:
    ids = [service.subscribe(email, "", consent_text=WORDING, origin=BROWSER) for email in emails]
    assert None not in ids
    return ids  # type: ignore[return-value]


def expire_leases(store: Store) -> None:
    """As if every lease and backoff had run out: what is due is due now."""
    with store.engine.begin() as conn:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.confirmation_due_at.is_not(None))
            .values(confirmation_due_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )


def queue_row(store: Store, subscriber_id: int):
    with store.engine.connect() as conn:
        return conn.execute(
            subscribers.select().where(subscribers.c.id == subscriber_id)
        ).one()


def test_claims_of_a_mailer_that_died_come_back_when_its_lease_runs_out(service, store, mailbox):
    ids = queued(service, "a@example.com", "b@example.com", "c@example.com")
    with store.transaction() as tx:  # a mailer claims them, then dies
        claimed = tx.claim_confirmations(
            50, dt.datetime.now(dt.UTC), worker="host:1:dead", lease=dt.timedelta(minutes=5)
        )
    assert [claim.subscriber.id for claim in claimed] == ids
    assert {queue_row(store, i).confirmation_claimed_by for i in ids} == {"host:1:dead"}
    assert service.send_due_confirmations() == 0  # held: nobody else takes them
    assert mailbox.messages == []

    expire_leases(store)
    assert service.send_due_confirmations() == 3
    assert sorted(m["To"].addresses[0].addr_spec for m in mailbox.messages) == [
        "a@example.com", "b@example.com", "c@example.com",
    ]
    for subscriber_id in ids:
        row = queue_row(store, subscriber_id)
        assert (row.confirmation_due_at, row.confirmation_claimed_by) == (None, None)
        assert row.confirmation_attempts == 2
        assert kinds(store, subscriber_id) == ["subscribed", "confirmation_sent"]


def test_a_failing_confirmation_backs_off_and_is_given_up_in_the_history(store):
    from subscribers.service import MAX_ATTEMPTS, retry_delay

    def broken(message: OutgoingMessage) -> None:
        raise OSError("relay down")

    failing = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, broken, mail=MAIL
    )
    (subscriber_id,) = queued(failing, "r@example.com")
    for attempt in range(1, MAX_ATTEMPTS):
        before = dt.datetime.now(dt.UTC)
        assert failing.send_due_confirmations() == 1
        after = dt.datetime.now(dt.UTC)
        due = queue_row(store, subscriber_id).confirmation_due_at
        due = due.replace(tzinfo=dt.UTC) if due.tzinfo is None else due
        assert before + retry_delay(attempt) <= due <= after + retry_delay(attempt)
        assert failing.send_due_confirmations() == 0  # not before then
        expire_leases(store)
    assert failing.send_due_confirmations() == 1
    row = queue_row(store, subscriber_id)
    assert row.confirmation_due_at is None and row.status == "pending"
    history = store.history(subscriber_id)
    assert [event.kind for event in history] == (
        ["subscribed"] + ["confirmation_failed"] * (MAX_ATTEMPTS - 1) + ["confirmation_given_up"]
    )
    assert history[1].detail["error"] == "relay down" and history[1].detail["attempt"] == 1
    assert history[-1].detail == {"attempts": MAX_ATTEMPTS, "error": "relay down"}
    expire_leases(store)
    assert failing.send_due_confirmations() == 0
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 7, 9)] == [60, 120, 240, 3600, 3600]


def test_a_confirmation_whose_mailer_dies_every_time_is_given_up_too(service, store, mailbox):
    from subscribers.service import MAX_ATTEMPTS

    (subscriber_id,) = queued(service, "crash@example.com")
    for number in range(MAX_ATTEMPTS):
        with store.transaction() as tx:
            (claim,) = tx.claim_confirmations(
                50, dt.datetime.now(dt.UTC), worker=f"host:{number}:x", lease=dt.timedelta(0)
            )
        assert claim.attempt == number + 1
        expire_leases(store)
    assert service.send_due_confirmations() == 1 and mailbox.messages == []
    assert queue_row(store, subscriber_id).confirmation_due_at is None
    given_up = store.history(subscriber_id)[-1]
    assert given_up.kind == "confirmation_given_up"
    assert given_up.detail == {
        "attempts": MAX_ATTEMPTS, "error": "the mailer stopped while sending it"
    }
    # Signing up again starts afresh.
    queued(service, "crash@example.com")
    assert service.send_due_confirmations() == 1 and len(mailbox.messages) == 1


def test_a_stopped_mailer_gives_back_the_claims_it_has_not_tried(service, store, mailbox):
    ids = queued(service, "a@example.com", "b@example.com", "c@example.com")
    taken = service.send_due_confirmations(stopped=lambda: len(mailbox.messages) >= 1)
    assert taken == 3 and len(mailbox.messages) == 1
    for subscriber_id in ids[1:]:
        row = queue_row(store, subscriber_id)
        assert row.confirmation_claimed_by is None and row.confirmation_attempts == 0
    assert service.send_due_confirmations() == 2  # due at once, for the next mailer
    assert sorted(m["To"].addresses[0].addr_spec for m in mailbox.messages) == [
        "a@example.com", "b@example.com", "c@example.com",
    ]


def test_a_slow_batch_renews_its_lease(store):
    lease = dt.timedelta(seconds=0.4)
    seen: list[dt.datetime] = []

    def slow(message: OutgoingMessage) -> None:
        seen.append(queue_row(store, second).confirmation_due_at)
        if len(seen) == 1:  # longer than a quarter of the lease
            started = time.monotonic()
            while time.monotonic() - started < lease.total_seconds() / 2:
                time.sleep(0.01)

    service = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, slow, mail=MAIL
    )
    _first, second = queued(service, "a@example.com", "b@example.com")
    assert service.send_due_confirmations(lease=lease) == 2
    assert seen[1] - seen[0] >= lease / 2  # renewed after the first message


def test_two_mailers_share_the_queue_without_sending_anything_twice(store, mailbox):
    from subscribers.service import ConfirmationMailer

    service = Subscriptions(  # 120 addresses at one domain: no limit on that here
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, mailbox, per_domain=None, mail=MAIL
    )
    emails = [f"m{n}@example.com" for n in range(120)]
    queued(service, *emails)
    mailers = [ConfirmationMailer(service, poll=0.05, batch=10, workers=2) for _ in range(2)]
    for mailer in mailers:
        mailer.start()
    try:
        deadline = time.monotonic() + 60
        while len(mailbox.messages) < len(emails):
            assert time.monotonic() < deadline, f"{len(mailbox.messages)} sent"
            time.sleep(0.01)
    finally:
        for mailer in mailers:
            mailer.stop()
    sent = [m["To"].addresses[0].addr_spec for m in mailbox.messages]
    assert sorted(sent) == sorted(emails)
    with store.engine.connect() as conn:
        claimed_by = {row.confirmation_claimed_by for row in conn.execute(subscribers.select())}
    assert claimed_by == {None}


# -- signups waiting for their link ----------------------------------------------


def test_signups_whose_link_was_never_mailed_are_not_kept(store, mailbox):
    limited = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, mailbox, Limit(2, 3600), mail=MAIL
    )
    for _ in range(10):
        subscriber_id = limited.subscribe("v@example.com", "", consent_text=WORDING, origin=BROWSER)
        limited.send_due_confirmations()
    assert len(mailbox.messages) == 2
    # The two mailed signups (their links are in the inbox) and the newest.
    waiting = store.signups(subscriber_id)
    assert len(waiting) == 3 and [s.mailed_at is not None for s in waiting] == [True, True, False]


def test_a_signup_made_while_a_confirmation_is_sent_gets_its_own(store):
    sent = Mailbox()

    def sending(message: OutgoingMessage) -> None:
        sent(message)
        if len(sent.messages) == 1:  # the reader submits the form again meanwhile
            subscriptions.subscribe("sam@example.com", "Sam", consent_text=WORDING, origin=BROWSER)

    subscriptions = Subscriptions(
        store, Signer("service-test-secret-0123456789"), NEWSLETTER, sending, mail=MAIL
    )
    subscriptions.subscribe("sam@example.com", "", consent_text=WORDING, origin=BROWSER)
    assert subscriptions.send_due_confirmations() == 1
    assert subscriptions.send_due_confirmations() == 1  # still due: the newer signup's message
    assert len(sent.messages) == 2 and sent.link(0) != sent.link(1)
    assert subscriptions.confirm(sent.link(1), BROWSER).subscriber.name == "Sam"
