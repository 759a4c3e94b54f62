"""Signups that mail scanners and strangers cannot abuse, over HTTP against
the real service on loopback: opening a link confirms nothing, a link
belongs to its signup, the per-network limit counts the right client and is
shared, confirmations are limited per mailbox and per domain, and nothing a
stranger types reaches someone else's inbox or consent record."""

from __future__ import annotations

import datetime as dt
import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from subscribers.models import EventKind, Limit, Status, utcnow
from subscribers.schema import subscribers
from tests.support.web import Live, live_service

SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks link checker)"}


@pytest.fixture
def live(tmp_path: Path, database_url: str):
    with live_service(tmp_path, database_url) as service:
        yield service


@pytest.fixture
def client(live: Live):
    with httpx.Client(
        base_url=live.url, headers={"User-Agent": "TestBrowser/1.0"}, timeout=10
    ) as http:
        yield http


def confirm_path(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"http://127\.0\.0\.1:\d+(/confirm/\S+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def outbox(live: Live) -> list[EmailMessage]:
    """Every message in the outbox now, oldest first."""
    paths = sorted(live.outbox.glob("*.eml")) if live.outbox.is_dir() else []
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in paths
    ]


def to(message: EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


def settled(live: Live, timeout: float = 20) -> None:
    """Wait until the mailer has done what it can now: nothing due and
    nothing claimed (a confirmation put off till later may still be queued)."""
    deadline = time.monotonic() + timeout
    while True:
        with live.store.engine.connect() as conn:
            busy = conn.execute(
                select(subscribers.c.id).where(
                    (subscribers.c.confirmation_due_at <= utcnow())
                    | subscribers.c.confirmation_claimed_by.is_not(None)
                )
            ).first()
        if busy is None:
            return
        assert time.monotonic() < deadline, "the mailer did not finish"
        time.sleep(0.02)


# -- 1. no GET changes state ------------------------------------------------------


def test_opening_a_confirmation_link_changes_nothing_until_its_button_is_pressed(live, client):
    client.post("/subscribe", data={"email": "sam@example.com"})
    path = confirm_path(live.mails(1)[0])
    # A mail scanner follows the link: GET, twice, and HEAD.
    for _ in range(2):
        page = client.get(path, headers=SCANNER)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert live.store.find("sam@example.com").status == Status.PENDING
    assert client.head(path, headers=SCANNER).status_code == 200
    sam = live.store.find("sam@example.com")
    assert sam.status == Status.PENDING and sam.consent.confirmed_at is None
    assert EventKind.CONFIRMED not in [event.kind for event in live.store.history(sam.id)]

    # The page: the masked address and one button, a plain form, no script.
    assert "s•••@example.com" in page.text
    assert len(re.findall(r"<button", page.text)) == 1
    assert f'<form method="post" action="{path}">' in page.text
    assert "<script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]

    done = client.post(path, headers={"User-Agent": "Reader/2.0"})
    assert done.status_code == 200 and "You are subscribed" in done.text
    sam = live.store.find("sam@example.com")
    assert sam.status == Status.ACTIVE and sam.consent.confirmed_at is not None
    assert (sam.consent.confirmed_ip, sam.consent.confirmed_user_agent) == (
        "127.0.0.1", "Reader/2.0",
    )
    confirmed = [e for e in live.store.history(sam.id) if e.kind == EventKind.CONFIRMED]
    assert confirmed[0].detail["user_agent"] == "Reader/2.0"
    assert live.mails(2)[1]["Subject"] == "Welcome to Pain Free Living"


# -- 2. a link belongs to its signup ----------------------------------------------


def test_a_link_from_before_an_unsubscribe_gets_the_out_of_date_page(live, client):
    client.post("/subscribe", data={"email": "sam@example.com"})
    old = confirm_path(live.mails(1)[0])
    sam = live.store.find("sam@example.com")
    client.post(f"/unsubscribe/{live.signer.unsubscribe(sam.id)}")
    # Someone else signs the address up again, and a new link is mailed.
    client.post(
        "/subscribe", data={"email": "sam@example.com"},
        headers={"User-Agent": "Stranger/1.0", "X-Forwarded-For": "203.0.113.66"},
    )
    new = confirm_path(live.mails(2)[1])
    assert new != old
    for response in (client.get(old), client.post(old)):
        assert response.status_code == 410
        assert "This link is out of date" in response.text and 'name="email"' in response.text
    assert live.store.find("sam@example.com").status == Status.PENDING
    assert client.post(new).status_code == 200
    assert live.store.find("sam@example.com").status == Status.ACTIVE


# -- 3. the per-network limit -------------------------------------------------------


def signups(client: httpx.Client, count: int, forwarded: list[str]) -> list[int]:
    statuses = []
    for n in range(count):
        headers = {"X-Forwarded-For": forwarded[n % len(forwarded)]}
        response = client.post(
            "/subscribe", data={"email": f"r{n}@example.com"}, headers=headers
        )
        statuses.append(response.status_code)
    return statuses


def test_forwarded_text_that_is_no_address_counts_as_one_client(tmp_path):
    with live_service(tmp_path, per_ip=Limit(3, 600)) as live, httpx.Client(
        base_url=live.url, timeout=10
    ) as client:
        statuses = signups(client, 6, [f"spoofed-{n}" for n in range(6)])
        assert statuses == [200, 200, 200, 429, 429, 429]
        assert live.store.find("r0@example.com").consent.ip is None  # not the text


def test_one_ipv6_slash_64_is_one_client(tmp_path):
    with live_service(tmp_path, per_ip=Limit(3, 600)) as live, httpx.Client(
        base_url=live.url, timeout=10
    ) as client:
        same = [f"2001:db8:1:2::{n:x}" for n in range(1, 7)]
        assert signups(client, 5, same) == [200, 200, 200, 429, 429]
        other = client.post(
            "/subscribe", data={"email": "o@example.com"},
            headers={"X-Forwarded-For": "2001:db8:1:3::1"},
        )
        assert other.status_code == 200
        assert live.store.find("r0@example.com").consent.ip == "2001:db8:1:2::1"


def test_behind_the_proxy_each_reader_counts_and_spoofed_entries_do_not(tmp_path):
    """The proxy appends the address it saw to whatever the client sent: the
    right-most entry is the reader, whatever the entries before it say."""
    with live_service(tmp_path, per_ip=Limit(3, 600)) as live, httpx.Client(
        base_url=live.url, timeout=10
    ) as client:
        spoofed = [f"198.51.100.{n}, 203.0.113.5" for n in range(10)]
        assert signups(client, 5, spoofed) == [200, 200, 200, 429, 429]
        assert live.store.find("r0@example.com").consent.ip == "203.0.113.5"
        # Another reader behind the same proxy is not held back by that one.
        other = client.post(
            "/subscribe", data={"email": "o@example.com"},
            headers={"X-Forwarded-For": "203.0.113.6"},
        )
        assert other.status_code == 200


def test_the_limit_is_shared_by_every_process(tmp_path, database_url):
    """Two services over one database: together they take the limit, not twice it."""
    with live_service(tmp_path, database_url, per_ip=Limit(3, 600)) as one, live_service(
        tmp_path, database_url, per_ip=Limit(3, 600)
    ) as two:
        statuses = []
        for n in range(6):
            service = (one, two)[n % 2]
            response = httpx.post(
                f"{service.url}/subscribe", data={"email": f"r{n}@example.com"}, timeout=10
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429, 429, 429]


# -- 4. no subscription bombing -----------------------------------------------------


VARIANTS = (
    ["victim@gmail.com", "Victim@Gmail.com", "v.i.c.t.i.m@gmail.com", "victim@googlemail.com"]
    + [f"victim+{n}@gmail.com" for n in range(12)]
    + [f"vic.tim+news{n}@googlemail.com" for n in range(4)]
)


def test_twenty_spellings_of_one_mailbox_get_three_confirmations(tmp_path, database_url):
    with live_service(tmp_path, database_url) as live, httpx.Client(
        base_url=live.url, timeout=10
    ) as client:
        twenty_spellings(live, client)


def twenty_spellings(live: Live, client: httpx.Client) -> None:
    fresh = client.post("/subscribe", data={"email": "someone.else@example.net"})
    answers = {client.post("/subscribe", data={"email": email}).text for email in VARIANTS}
    assert answers == {fresh.text}  # the same page either way
    settled(live)
    mails = [to(message) for message in outbox(live)]
    assert len([m for m in mails if m.endswith(("@gmail.com", "@googlemail.com"))]) == 3, mails
    assert "someone.else@example.net" in mails


def test_a_burst_to_one_domain_waits_its_turn(tmp_path):
    with live_service(tmp_path, per_domain=Limit(5, 60)) as live, httpx.Client(
        base_url=live.url, timeout=10
    ) as client:
        before = utcnow()
        for n in range(8):
            client.post("/subscribe", data={"email": f"reader{n}@bigcorp.example"})
        client.post("/subscribe", data={"email": "other@example.net"})
        settled(live)
        mails = [to(message) for message in outbox(live)]
        assert len([m for m in mails if m.endswith("@bigcorp.example")]) == 5, mails
        assert "other@example.net" in mails  # other domains are not held up
        with live.store.engine.connect() as conn:
            waiting = conn.execute(
                select(subscribers.c.confirmation_due_at).where(
                    subscribers.c.confirmation_due_at.is_not(None)
                )
            ).scalars().all()
        # The other three are still queued, for a later minute.
        assert len(waiting) == 3
        for due in waiting:
            due = due.replace(tzinfo=dt.UTC) if due.tzinfo is None else due
            assert before + dt.timedelta(seconds=1) < due < before + dt.timedelta(minutes=3)


@pytest.mark.parametrize("report", [EventKind.COMPLAINED, EventKind.BOUNCED])
def test_a_mailbox_that_complained_or_bounced_gets_one_confirmation_a_month(tmp_path, report):
    with live_service(tmp_path, per_address=Limit(100, 3600)) as live, httpx.Client(
        base_url=live.url, timeout=10
    ) as client:
        reader = live.store.add("sam@example.com")
        live.store.record_event(reader.id, report, status=Status(str(report)))
        fresh = client.post("/subscribe", data={"email": "new@example.net"})
        for email in ("sam@example.com", "sam@example.com", "Sam+again@example.com"):
            assert client.post("/subscribe", data={"email": email}).text == fresh.text
            settled(live)
        mails = [to(message) for message in outbox(live)]
        assert sorted(mails) == ["new@example.net", "sam@example.com"], mails


# -- 5. a stranger's text reaches nobody ----------------------------------------------


def test_a_strangers_name_reaches_no_inbox_and_no_consent_record(live, client):
    client.post(
        "/subscribe", data={"email": "robin@example.com", "name": "Robin"},
        headers={"User-Agent": "Reader/1.0"},
    )
    first = live.mails(1)[0]
    client.post(
        "/subscribe",
        data={"email": "robin@example.com", "name": "You WON 1000 USD visit https://evil.example"},
        headers={"User-Agent": "Stranger/6.6", "X-Forwarded-For": "203.0.113.66"},
    )
    second = live.mails(2)[1]
    for message in (first, second):
        raw = message.as_string()
        assert "evil" not in raw and "WON" not in raw and "Robin" not in raw
        assert message["To"].addresses[0].display_name == ""
        assert message.get_body(("plain",)).get_content().startswith("Hello,")
    robin = live.store.find("robin@example.com")
    assert robin.name == "Robin" and robin.consent.user_agent == "Reader/1.0"
    assert robin.consent.ip == "127.0.0.1"

    # Robin confirms the link of Robin's own signup: Robin's name and consent.
    client.post(confirm_path(first))
    robin = live.store.find("robin@example.com")
    assert robin.status == Status.ACTIVE and robin.name == "Robin"
    assert robin.consent.user_agent == "Reader/1.0" and robin.consent.ip == "127.0.0.1"
    welcome = live.mails(3)[2]
    assert "Hi Robin," in welcome.get_body(("plain",)).get_content()
