"""The List-Unsubscribe mailto: ``unsubscribe+TOKEN@`` the unsubscribe domain
in every issue and welcome, and the mail SES receives there unsubscribing
the reader, through the SQS queue (moto over HTTP, `publish events sync`)
and through ``POST /ses/events`` (a real server, SNS-signed posts)."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from pipeline.context import Context
from pipeline.errors import ConfigError
from pipeline.issue import load_issue
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import render_issue
from subscribers import db
from subscribers.errors import TokenError
from subscribers.events import Policy
from subscribers.inbound import UnsubscribeMailbox
from subscribers.mail_template import OutgoingMessage
from subscribers.models import Newsletter, Status
from subscribers.schema import subscriber_events, subscribers, suppressions
from subscribers.service import Subscriptions
from subscribers.sqs import sync_queue
from subscribers.store import Store
from subscribers.tokens import Signer
from subscribers.unsubscribe_address import local_part, mailto, read
from subscribers.web import create_app
from tests.support.aws import free_port, topic_to_queue
from tests.support.mail import service_mail
from tests.support.sns import TOPIC, FakeSns
from tests.support.web import SECRET, config, serving

DOMAIN = "list.painfreeliving.example.com"
SIGNER = Signer(SECRET)
runner = CliRunner()


def address_of(subscriber_id: int, signer: Signer = SIGNER, domain: str = DOMAIN) -> str:
    local = local_part(signer.unsubscribe(subscriber_id))
    assert local is not None
    return f"{local}@{domain}"


def received(recipients: list[str], *, message_id: str = "", virus: str = "PASS") -> dict:
    """A notification of an SES receipt rule's SNS action, as AWS documents it."""
    message_id = message_id or uuid.uuid4().hex[:28]
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-12-02T09:15:00.000Z",
            "source": "reader@example.com",
            "messageId": message_id,
            "destination": list(recipients),
            "headersTruncated": False,
            "headers": [{"name": "Subject", "value": "unsubscribe"}],
            "commonHeaders": {
                "from": ["Reader <reader@example.com>"],
                "to": list(recipients),
                "subject": "unsubscribe",
            },
        },
        "receipt": {
            "timestamp": "2026-12-02T09:15:00.000Z",
            "processingTimeMillis": 222,
            "recipients": list(recipients),
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": virus},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": {"type": "SNS", "topicArn": TOPIC, "encoding": "UTF8"},
        },
        "content": "From: reader@example.com\r\nSubject: unsubscribe\r\n\r\nplease\r\n",
    }


def mac_of_link(token: str) -> bytes:
    return base64.urlsafe_b64decode(token.split(".")[1] + "==")


def mac_of_address(address: str) -> bytes:
    mac32 = address.split("@")[0].split("-")[-1]
    return base64.b32decode(mac32.upper() + "======")


# ---------------------------------------------------------------------------
# The setting
# ---------------------------------------------------------------------------


def test_the_setting_is_a_mail_domain_written_in_ascii(newsletter, monkeypatch):
    assert load_settings(newsletter).unsubscribe_domain == ""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_DOMAIN", "List.Bücher.example")
    assert load_settings(newsletter).unsubscribe_domain == "list.xn--bcher-kva.example"
    for bad in ("not a domain", "unsubscribe@list.example.com", "localhost", "-x.example"):
        monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_DOMAIN", bad)
        with pytest.raises(ConfigError, match=r"^sender\.unsubscribe_domain: "):
            load_settings(newsletter)


def test_the_setting_is_read_from_the_sender_table(newsletter):
    path = newsletter / "newsletter.toml"
    text = path.read_text(encoding="utf-8").replace(
        "[sender]\n", f'[sender]\nunsubscribe_domain = "{DOMAIN}"\n'
    )
    path.write_text(text, encoding="utf-8")
    assert load_settings(newsletter).unsubscribe_domain == DOMAIN


def test_the_repository_newsletter_has_the_key_empty():
    settings = load_settings(Path(__file__).resolve().parents[1], environ={})
    assert settings.unsubscribe_domain == ""


# ---------------------------------------------------------------------------
# The header of an issue and of the welcome
# ---------------------------------------------------------------------------


@pytest.fixture
def rendered(settings):
    issue = load_issue(settings.issues_dir / "2026-12-01-calf-stretch.md")
    return render_issue(issue, Context.load(settings))


def list_unsubscribe(raw: bytes) -> list[str]:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert not message.defects
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    value = str(message["List-Unsubscribe"])
    return [part.strip().removeprefix("<").removesuffix(">") for part in value.split(",")]


def test_with_a_domain_the_header_offers_the_readers_own_address(rendered, settings):
    with_domain = dataclasses.replace(settings, unsubscribe_domain=DOMAIN)
    personalizer = Personalizer(rendered, with_domain, SIGNER.unsubscribe)
    url, target = list_unsubscribe(personalizer(Recipient(4711, "alex@example.com")).raw)

    token = SIGNER.unsubscribe(4711)
    assert url == f"{settings.site_url}/unsubscribe/{token}"
    assert target.startswith("mailto:") and target.endswith("?subject=unsubscribe")
    address = target.removeprefix("mailto:").removesuffix("?subject=unsubscribe")
    local, _, domain = address.partition("@")
    assert domain == DOMAIN and local.startswith("unsubscribe+")
    assert local == local.lower() and len(local) <= 64
    assert read(SIGNER, address, DOMAIN) == 4711
    assert mac_of_address(address) == mac_of_link(token)  # one MAC, two spellings
    assert settings.reply_to.email not in target


def test_without_a_domain_the_header_has_the_link_alone(rendered, settings):
    personalizer = Personalizer(rendered, settings, SIGNER.unsubscribe)
    raw = personalizer(Recipient(7, "alex@example.com")).raw
    assert list_unsubscribe(raw) == [f"{settings.site_url}/unsubscribe/{SIGNER.unsubscribe(7)}"]
    assert b"mailto:" not in raw.partition(b"\r\n\r\n")[0]


def test_an_international_unsubscribe_domain_is_written_in_ascii(rendered, settings):
    with_domain = dataclasses.replace(settings, unsubscribe_domain="list.bücher.example")
    raw = Personalizer(rendered, with_domain, SIGNER.unsubscribe)(Recipient(9, "r@example.com")).raw
    _, target = list_unsubscribe(raw)
    assert "@list.xn--bcher-kva.example?" in target
    assert raw.isascii()


def test_a_preview_with_its_sample_link_has_no_mailto(rendered, settings):
    with_domain = dataclasses.replace(settings, unsubscribe_domain=DOMAIN)
    raw = Personalizer(rendered, with_domain, lambda _id: "preview")(Recipient(0, "e@example.com")).raw
    assert list_unsubscribe(raw) == [f"{settings.site_url}/unsubscribe/preview"]


def test_the_welcome_offers_the_same_address(tmp_path):
    newsletter = Newsletter(
        name="Pain Free Living",
        site_url="https://painfreeliving.example.com",
        sender="Pain Free Living <newsletter@painfreeliving.example.com>",
        reply_to="Dana Whitfield <dana@painfreeliving.example.com>",
        postal_address="1200 Harbor Street, Portland, ME 04101, USA",
        unsubscribe_domain=DOMAIN,
    )
    sent: list[OutgoingMessage] = []
    with Store.open(f"sqlite:///{tmp_path / 'subscribers.db'}", tmp_path) as store:
        service = Subscriptions(
            store, SIGNER, newsletter, sent.append, mail=service_mail(newsletter, tmp_path)
        )
        subscriber_id = store.add("sam@example.com", name="Sam").id
        assert service.send_welcome(subscriber_id)
    raw = sent[-1].raw
    url, target = list_unsubscribe(raw)
    assert url == f"https://painfreeliving.example.com/unsubscribe/{SIGNER.unsubscribe(subscriber_id)}"
    assert target == mailto(SIGNER.unsubscribe(subscriber_id), DOMAIN)
    address = target.removeprefix("mailto:").removesuffix("?subject=unsubscribe")
    assert read(SIGNER, address, DOMAIN) == subscriber_id
    assert "dana@" not in target


# ---------------------------------------------------------------------------
# Reading an address
# ---------------------------------------------------------------------------


def test_an_address_reads_back_in_any_case_and_under_the_previous_secret():
    address = address_of(123456789)
    assert read(SIGNER, address, DOMAIN) == 123456789
    assert read(SIGNER, address.upper(), DOMAIN) == 123456789  # a mail system lowercased or not
    assert read(SIGNER, address.replace(DOMAIN, DOMAIN.upper() + "."), DOMAIN) == 123456789
    rotated = Signer("a brand new secret 0123456789 xyz", previous=SECRET)
    assert read(rotated, address, DOMAIN) == 123456789
    assert len(address_of(9_999_999_999_999_999_999).split("@")[0]) <= 64


def _swap_last(address: str) -> str:
    local, _, domain = address.partition("@")
    last = "a" if local[-1] != "a" else "b"
    return f"{local[:-1]}{last}@{domain}"


def _truncated(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:-1]}@{domain}"


def _other_id(address: str) -> str:
    """The MAC of one reader with the id of the next."""
    local, _, domain = address.partition("@")
    next_local = local_part(SIGNER.unsubscribe(int(local.split("+")[1].split("-")[0], 36) + 1))
    assert next_local is not None
    return f"{next_local.split('-')[0]}-{local.split('-')[1]}@{domain}"


def _non_canonical(address: str) -> str:
    """The same 128 bits with one of the two padding bits set."""
    local, _, domain = address.partition("@")
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet[alphabet.index(local[-1]) ^ 1]
    return f"{local[:-1]}{last}@{domain}"


ADDRESS = address_of(42)
BAD = {
    "tampered": _swap_last(ADDRESS),
    "another id": _other_id(ADDRESS),
    "truncated": _truncated(ADDRESS),
    "no mac": f"unsubscribe+16@{DOMAIN}",
    "foreign secret": address_of(42, Signer("somebody else's secret 0123456789")),
    "another domain": address_of(42, domain="painfreeliving.example.com"),
    "a subdomain": address_of(42, domain="x." + DOMAIN),
    "another prefix": ADDRESS.replace("unsubscribe+", "unsub+"),
    "no prefix": ADDRESS.replace("unsubscribe+", ""),
    "leading zero": ADDRESS.replace("unsubscribe+", "unsubscribe+0"),
    "non-canonical": _non_canonical(ADDRESS),
    "too long": "unsubscribe+" + "1" * 60 + "-" + ADDRESS.split("-")[1],
    "non-ascii": ADDRESS.replace("unsubscribe+", "ünsubscribe+"),
    "no @": ADDRESS.replace("@", ""),
    "the editor": "dana@painfreeliving.example.com",
}


@pytest.mark.parametrize("address", BAD.values(), ids=BAD.keys())
def test_anything_but_a_genuine_address_is_refused(address):
    with pytest.raises(TokenError):
        read(SIGNER, address, DOMAIN)


def test_no_domain_reads_nothing():
    with pytest.raises(TokenError):
        read(SIGNER, ADDRESS, "")


def test_a_link_token_that_is_not_signed_has_no_address():
    assert local_part("preview") is None
    assert local_part("12.short") is None
    assert local_part("12." + "!" * 22) is None
    assert mailto(SIGNER.unsubscribe(1), "") == ""


# ---------------------------------------------------------------------------
# Through SQS: SNS topic -> SQS queue -> `publish events sync`
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Feed:
    sqs: Any
    sns: Any
    queue_url: str
    dead_letters_url: str
    topic_arn: str

    def publish(self, body: dict) -> None:
        self.sns.publish(TopicArn=self.topic_arn, Message=json.dumps(body))

    def counts(self, url: str | None = None) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (int(attributes["ApproximateNumberOfMessages"]),
                int(attributes["ApproximateNumberOfMessagesNotVisible"]))


@pytest.fixture
def feed(aws) -> Feed:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    queue, dead, topic = topic_to_queue(sqs, sns, "ses-inbound", max_receive_count=1)
    return Feed(sqs, sns, queue, dead, topic)


@pytest.fixture
def live(settings, monkeypatch) -> Iterator[Store]:
    """The newsletter's store, its settings with the unsubscribe domain and secret."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_DOMAIN", DOMAIN)
    monkeypatch.setenv("NEWSLETTER_TOKEN_SECRET", SECRET)
    with Store.open(settings.database_url, settings.root) as opened:
        yield opened


def sync(feed: Feed):
    result = runner.invoke(app, ["events", "sync", "--queue-url", feed.queue_url, "--wait", "0"])
    assert result.exit_code == 0, result.output
    return result.stdout


def status_of(store: Store, subscriber_id: int) -> Status:
    found = store.get(subscriber_id)
    assert found is not None
    return found.status


def mailto_events(store: Store, subscriber_id: int) -> list[Any]:
    return [e for e in store.history(subscriber_id) if e.detail.get("via") == "mailto"]


def test_mail_to_a_readers_address_unsubscribes_them_once(feed, live):
    ana, ben = live.add("ana@example.com"), live.add("ben@example.com")
    body = received([address_of(ana.id)], message_id="inbound-ana-1")
    feed.publish(body)

    assert "1 unsubscribed by mail" in sync(feed)
    assert status_of(live, ana.id) == Status.UNSUBSCRIBED
    assert status_of(live, ben.id) == Status.ACTIVE
    [event] = mailto_events(live, ana.id)
    assert event.kind == "unsubscribed"
    assert event.detail["message_id"] == "inbound-ana-1"
    assert event.external_id == f"mailto:inbound-ana-1:{ana.id}"
    assert feed.counts() == (0, 0)

    feed.publish(body)  # SNS and SQS deliver at least once
    assert "unsubscribed by mail" not in sync(feed)
    assert len(mailto_events(live, ana.id)) == 1
    assert feed.counts() == (0, 0)


def test_a_redelivery_does_not_unsubscribe_a_reader_who_came_back(feed, live):
    ana = live.add("ana@example.com")
    body = received([address_of(ana.id).upper()])  # a mail system that uppercases
    feed.publish(body)
    assert "1 unsubscribed by mail" in sync(feed)
    with live.transaction() as tx:  # they sign up again and confirm
        tx.set_status(live.get(ana.id), Status.ACTIVE, None)
    feed.publish(body)
    sync(feed)
    assert status_of(live, ana.id) == Status.ACTIVE


def test_mail_without_a_valid_token_changes_nothing_and_is_deleted(feed, live, settings, caplog):
    ana = live.add("ana@example.com")
    live.add("ben@example.com")
    left = live.add("cleo@example.com")
    live.unsubscribe(left.id)
    strangers = [
        _swap_last(address_of(ana.id)),
        address_of(ana.id, Signer("somebody else's secret 0123456789")),
        address_of(ana.id, domain="elsewhere.example"),
        f"dana@{DOMAIN}",
    ]
    feed.publish(received(strangers))
    feed.publish(received([address_of(ana.id)], virus="FAIL"))
    feed.publish(received([address_of(left.id)]))  # left already
    before = rows(live)
    mailbox = UnsubscribeMailbox(SIGNER, DOMAIN)

    with caplog.at_level(logging.INFO, logger="subscribers"):
        report = sync_queue(live, feed.sqs, feed.queue_url, Policy(), receivers=1, mailbox=mailbox)

    assert (report.received, report.deleted, report.kept) == (3, 3, 0)
    assert report.applied.unsubscribed_by_mail == 0
    assert rows(live) == before
    assert feed.counts() == (0, 0)
    assert feed.counts(feed.dead_letters_url) == (0, 0)
    assert "not valid unsubscribe addresses" in caplog.text and "virus" in caplog.text
    assert "@" not in caplog.text and "unsubscribe+" not in caplog.text


def rows(store: Store) -> dict:
    with store.engine.connect() as conn:
        return {
            table.name: sorted(tuple(map(str, row)) for row in conn.execute(select(table)))
            for table in (subscribers, subscriber_events, suppressions)
        }


def test_without_a_domain_received_mail_changes_nothing(feed, settings):
    with Store.open(settings.database_url, settings.root) as store:
        ana = store.add("ana@example.com")
        feed.publish(received([address_of(ana.id)]))
        assert "unsubscribed by mail" not in sync(feed)
        assert status_of(store, ana.id) == Status.ACTIVE
    assert feed.counts() == (0, 0)


def test_the_summary_counts_unsubscribes_by_mail():
    from pipeline.cli.events import summary
    from subscribers.events import Applied
    from subscribers.sqs import SyncReport

    report = SyncReport(received=2, deleted=2, seconds=0.2,
                        applied=Applied(delivered=1, unsubscribed_by_mail=1))
    assert summary(report) == (
        "2 messages in 0.2 s: 1 delivered, 0 bounced, 0 soft-bounced, 0 undetermined, "
        "0 complained, 1 unsubscribed by mail; 0 taken off the list"
    )


# ---------------------------------------------------------------------------
# Through the webhook: SNS posts to POST /ses/events
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Hook:
    url: str
    store: Store
    sns: FakeSns
    client: httpx.Client

    def post(self, body: dict) -> httpx.Response:
        message = self.sns.notification(json.dumps(body))
        return self.client.post(
            f"{self.url}/ses/events",
            content=json.dumps(message),
            headers={"Content-Type": "text/plain; charset=UTF-8"},
        )


@pytest.fixture
def hook(tmp_path, fake_sns) -> Iterator[Hook]:
    engine = db.connect(f"sqlite:///{tmp_path / 'subscribers.db'}", tmp_path)
    port = free_port()
    app_ = create_app(
        engine,
        config(f"http://127.0.0.1:{port}", sns_topic_arns=(TOPIC,), unsubscribe_domain=DOMAIN),
        lambda _message: None,
        mailer=False,
        sns_fetch=fake_sns.fetch,
    )
    try:
        with serving(app_, port) as url, httpx.Client(timeout=30) as client:
            yield Hook(url, Store(engine), fake_sns, client)
    finally:
        engine.dispose()


def test_a_posted_notification_unsubscribes_the_reader_once(hook):
    ana = hook.store.add("ana@example.com")
    body = received([address_of(ana.id)], message_id="inbound-web-1")

    response = hook.post(body)
    assert response.status_code == 200, response.text
    assert status_of(hook.store, ana.id) == Status.UNSUBSCRIBED
    assert [e.external_id for e in mailto_events(hook.store, ana.id)] == [
        f"mailto:inbound-web-1:{ana.id}"]

    before = rows(hook.store)
    again = hook.post(body)  # the same mail in a new SNS message
    assert again.status_code == 200, again.text
    assert rows(hook.store) == before


@pytest.mark.parametrize("case", ["tampered", "foreign secret", "another domain", "virus"])
def test_a_posted_notification_without_a_valid_token_is_answered_200_and_changes_nothing(
    hook, case
):
    ana = hook.store.add("ana@example.com")
    address = address_of(ana.id)
    body = {
        "tampered": received([_swap_last(address)]),
        "foreign secret": received([address_of(ana.id, Signer("another secret 0123456789 abc"))]),
        "another domain": received([address_of(ana.id, domain="elsewhere.example")]),
        "virus": received([address], virus="FAIL"),
    }[case]
    before = rows(hook.store)
    response = hook.post(body)
    assert response.status_code == 200, response.text
    assert rows(hook.store) == before


def test_publish_serve_gives_the_endpoint_the_domain(newsletter, monkeypatch):
    from pipeline.cli.serve import _web_config

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_DOMAIN", DOMAIN)
    web = _web_config(load_settings(newsletter), SECRET)
    assert web.unsubscribe_domain == DOMAIN
    assert web.newsletter.unsubscribe_domain == DOMAIN

