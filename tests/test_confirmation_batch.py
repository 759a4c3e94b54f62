"""The confirmation mailer's batches, on SQLite and on PostgreSQL: one lease
and one transaction claim a batch, one transaction records its results; a
mailer killed mid-batch leaves the messages it had not recorded to the next
one, the others go out once; a failure in a batch is retried alone; limits
hold within a batch; and a mailer wakes when another process queues a
confirmation, without being told."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import event, select

from subscribers.confirmation_queue import retry_delay
from subscribers.limits import Bucket
from subscribers.mail_template import OutgoingMessage
from subscribers.mailer import ConfirmationMailer
from subscribers.models import Limit, mailbox_key
from subscribers.schema import rate_limits, subscribers
from subscribers.service import Subscriptions
from subscribers.store import Store
from subscribers.tokens import Signer
from tests.test_service import (
    BROWSER,
    MAIL,
    NEWSLETTER,
    WORDING,
    Mailbox,
    expire_leases,
    kinds,
    queue_row,
    queued,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "service-test-secret-0123456789"
NO_LIMIT = Limit(10**9, 60)


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def service_for(store: Store, send_mail, **limits) -> Subscriptions:  # type: ignore[no-untyped-def]
    return Subscriptions(
        store, Signer(SECRET), NEWSLETTER, send_mail, mail=MAIL, **({"per_domain": None} | limits)
    )


def commits(store: Store) -> list[int]:
    """A list that counts the transactions committed on ``store`` from now on."""
    seen: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: seen.append(1))
    return seen


def recipient(message) -> str:  # type: ignore[no-untyped-def]
    return str(message["To"].addresses[0].addr_spec)


# -- one lease, two transactions ------------------------------------------------


def test_one_lease_claims_a_batch_and_one_transaction_records_it(store):
    mailbox = Mailbox()
    held: list[set[tuple[object, object]]] = []

    def sending(message: OutgoingMessage) -> None:
        with store.engine.connect() as conn:  # what the queue says while it goes out
            rows = conn.execute(select(subscribers).where(subscribers.c.id.in_(ids))).all()
        held.append({(row.confirmation_claimed_by, row.confirmation_due_at) for row in rows})
        mailbox(message)

    service = service_for(store, sending)
    ids = queued(service, *(f"b{n}@example.com" for n in range(5)))
    counted = commits(store)
    assert service.send_due_confirmations() == 5
    assert len(counted) == 2  # the claim, then the results: not two per message
    assert sorted(map(recipient, mailbox.messages)) == [f"b{n}@example.com" for n in range(5)]
    # Every message of the batch was held by the one lease until the results.
    (lease,) = held[0]
    assert lease[0] is not None and lease[1] is not None
    assert all(seen == {lease} for seen in held)
    for subscriber_id in ids:
        row = queue_row(store, subscriber_id)
        assert (row.confirmation_due_at, row.confirmation_claimed_by) == (None, None)
        assert row.confirmation_sent_at is not None
        assert kinds(store, subscriber_id) == ["subscribed", "confirmation_sent"]
    assert service.send_due_confirmations() == 0


def test_a_failure_in_a_batch_is_retried_alone(store):
    mailbox = Mailbox()

    def sending(message: OutgoingMessage) -> None:
        mailbox(message)
        if recipient(mailbox.messages[-1]) == "down@example.com":
            raise OSError("451 mailbox busy")

    service = service_for(store, sending)
    first, down, last = queued(service, "a@example.com", "down@example.com", "c@example.com")
    counted = commits(store)
    before = dt.datetime.now(dt.UTC)
    assert service.send_due_confirmations() == 3
    after = dt.datetime.now(dt.UTC)
    assert len(counted) == 2
    for subscriber_id in (first, last):
        assert kinds(store, subscriber_id) == ["subscribed", "confirmation_sent"]
        assert queue_row(store, subscriber_id).confirmation_due_at is None
    (failed,) = store.history(down)[1:]
    assert failed.kind == "confirmation_failed"
    assert failed.detail["attempt"] == 1 and failed.detail["error"] == "451 mailbox busy"
    row = queue_row(store, down)
    due = row.confirmation_due_at
    due = due.replace(tzinfo=dt.UTC) if due.tzinfo is None else due
    assert before + retry_delay(1) <= due <= after + retry_delay(1)
    assert row.confirmation_claimed_by is None and row.confirmation_sent_at is None
    # Nothing went to it, so its mailbox's count was given back.
    key = Bucket("mailbox", mailbox_key("down@example.com"), service.confirmations.per_address).key
    with store.engine.connect() as conn:
        hits = conn.execute(select(rate_limits.c.hits).where(rate_limits.c.key == key)).scalars()
        assert set(hits) <= {0}
    assert service.send_due_confirmations() == 0  # not due again at once
    expire_leases(store)
    assert service.send_due_confirmations() == 1
    assert [recipient(m) for m in mailbox.messages].count("down@example.com") == 2


def test_the_limits_hold_within_one_batch(store):
    """Three addresses of one mailbox and four of one domain, claimed in
    one batch (its limits taken in the claim's transaction): the mailbox
    gets its one message, the domain its three; the rest of the domain
    waits for a later window."""
    mailbox = Mailbox()
    service = service_for(store, mailbox, per_address=Limit(1, 3600), per_domain=Limit(3, 3600))
    queued(
        service,
        "victim@example.com", "Victim+1@example.com", "victim+2@example.com",
        "x1@other.example", "x2@other.example", "x3@other.example", "x4@other.example",
    )  # fmt: skip
    counted = commits(store)
    assert service.send_due_confirmations() == 7
    assert len(counted) == 2
    got = Counter(mailbox_key(recipient(m)) for m in mailbox.messages)
    assert got["victim@example.com"] == 1
    assert sum(n for box, n in got.items() if box.endswith("@other.example")) == 3
    with store.engine.connect() as conn:
        waiting = conn.execute(
            select(subscribers.c.email, subscribers.c.confirmation_due_at).where(
                subscribers.c.confirmation_due_at.is_not(None)
            )
        ).all()
    # The one left at other.example is due after this window; the victim's
    # two other signups get nothing.
    assert [email.split("@")[1] for email, _ in waiting] == ["other.example"]


# -- a mailer killed mid-batch ------------------------------------------------------

KILLED_MAILER = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys, time
    from pathlib import Path
    from subscribers.models import Limit
    from subscribers.service import Subscriptions
    from subscribers.store import Store
    from subscribers.tokens import Signer
    from tests.support.mail import service_mail
    from tests.test_service import NEWSLETTER

    url, root, outbox, secret = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    lease = dt.timedelta(seconds=0.4)
    sent = []

    def send(message):
        sent.append(message)
        (outbox / f"{len(sent)}.eml").write_bytes(message.raw)
        if len(sent) == 1:  # longer than a quarter of the lease: renewed, with what is done
            started = time.monotonic()
            while time.monotonic() - started < lease.total_seconds() / 2:
                time.sleep(0.01)
        if len(sent) == 3:  # sent, not recorded: the mailer dies
            os.kill(os.getpid(), signal.SIGKILL)

    store = Store.open(url, root)
    service = Subscriptions(store, Signer(secret), NEWSLETTER, send, per_domain=None,
                            mail=service_mail(NEWSLETTER))
    service.send_due_confirmations(worker="host:1:killed", lease=lease)
    sys.exit("the mailer was not killed")
    """
)


def test_a_mailer_killed_mid_batch_leaves_what_it_had_not_recorded(store, database_url, tmp_path):
    """It claims five, records the first (with its lease's renewal), sends
    two more and is SIGKILLed. The next mailer sends the four not recorded:
    the two sent unrecorded go out twice, the first and the untried once."""
    emails = [f"k{n}@example.com" for n in range(5)]
    ids = queued(service_for(store, Mailbox()), *emails)
    outbox = tmp_path / "killed-outbox"
    outbox.mkdir()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MAILER, database_url, str(tmp_path), str(outbox), SECRET],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert kinds(store, ids[0]) == ["subscribed", "confirmation_sent"]
    for subscriber_id in ids[1:]:  # still claimed by the dead mailer
        assert kinds(store, subscriber_id) == ["subscribed"]
        assert queue_row(store, subscriber_id).confirmation_claimed_by == "host:1:killed"

    mailbox = Mailbox()
    expire_leases(store)  # as if the lease had run out
    assert service_for(store, mailbox).send_due_confirmations() == 4
    first_time = [email for email in emails for f in outbox.iterdir() if email in f.read_text()]
    got = Counter(first_time) + Counter(map(recipient, mailbox.messages))
    assert got == {emails[0]: 1, emails[1]: 2, emails[2]: 2, emails[3]: 1, emails[4]: 1}
    for subscriber_id in ids:  # each history has the one message recorded as sent
        assert kinds(store, subscriber_id) == ["subscribed", "confirmation_sent"]
        assert queue_row(store, subscriber_id).confirmation_claimed_by is None


# -- waking ------------------------------------------------------------------------


def test_a_mailer_wakes_when_another_process_queues_a_confirmation(store, database_url, tmp_path):
    """The mailer is never notified and polls once a minute; a signup made
    through an engine of its own (as the web process's is) wakes it."""
    mailbox = Mailbox()
    mailer = ConfirmationMailer(service_for(store, mailbox), poll=60)
    looked = commits(store)
    mailer.start()
    try:
        deadline = time.monotonic() + 20
        while not looked:  # it has looked at the empty queue, and waits
            assert time.monotonic() < deadline, "the mailer never looked at the queue"
            time.sleep(0.01)
        with Store.open(database_url, tmp_path) as elsewhere:
            web = service_for(elsewhere, Mailbox())
            web.subscribe("woken@example.com", "", consent_text=WORDING, origin=BROWSER)
            while not mailbox.messages:
                assert time.monotonic() < deadline, "the mailer slept through the signup"
                time.sleep(0.01)
    finally:
        mailer.stop()
    assert [recipient(m) for m in mailbox.messages] == ["woken@example.com"]
