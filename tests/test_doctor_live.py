"""`publish doctor --live`: probes to SES's mailbox simulator, sent through
the stand-in to moto, whose feedback the stand-in publishes to the
configuration set's topic as SES would; moto's SNS delivers it to the SQS
queue, and doctor drives `publish events sync`'s queue sync until each
probe's feedback is recorded. No subscriber changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.golive.clients import clients_for
from pipeline.golive.live import SIMULATOR, Loop, consequence, run_live
from pipeline.golive.names import names_for
from subscribers import probes
from subscribers.events import Policy, apply_feedback, apply_notification
from subscribers.notifications import Feedback, Kind
from subscribers.probes import Probe
from subscribers.schema import delivery_probes, subscriber_events, subscribers, suppressions
from subscribers.store import Store
from tests.support.dns_server import dns_zone  # noqa: F401  (fixture)
from tests.support.ses_account import (  # noqa: F401  (fixture)
    SIMULATED,
    client,
    publish_events,
    set_up_account,
    verified_standin,
    zone,
)
from tests.support.ses_samples import SHAPES, notification

runner = CliRunner()
SECRET = "k3J9-vQx_28LmZp0aTt7WcYr4NhB5sEu"
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(settings):
    with Store.open(settings.database_url, settings.root) as opened:
        yield opened


def list_tables(store: Store) -> list[list[tuple]]:
    """Every row of the subscriber list's tables."""
    with store.engine.connect() as conn:
        return [list(conn.execute(select(table).order_by(*table.primary_key.columns)))
                for table in (subscribers, subscriber_events, suppressions)]


@pytest.fixture
def account(verified_standin, settings, store, monkeypatch):  # noqa: F811
    made = set_up_account(names_for(settings))
    for key, value in {
        "NEWSLETTER_TOKEN_SECRET": SECRET,
        "NEWSLETTER_TRANSPORT": "ses",
        "NEWSLETTER_SES_CONFIGURATION_SET": "pain-free-living",
        "NEWSLETTER_EVENTS_QUEUE_URL": made.queue_url,
    }.items():
        monkeypatch.setenv(key, value)
    for address in ("ana@example.com", "ben@example.com"):
        store.add(address)
    return made


def queue_counts(url: str) -> tuple[int, int]:
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]))


@pytest.mark.parametrize("shape", SHAPES, ids=["notifications", "event-publishing"])
def test_doctor_live_sees_each_notification_and_changes_no_subscriber(
    account, settings, store, verified_standin, aws, dns_zone, shape  # noqa: F811
):
    published = publish_events(verified_standin, aws.url, shape=shape)
    before = list_tables(store)
    nameserver = dns_zone(zone(names_for(settings), account.tokens))

    result = runner.invoke(app, ["doctor", "--live", "--timeout", "30",
                                 "--nameserver", nameserver])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("ok: live:")] == [
        "ok: live: success@simulator: delivered: the reader's history would record the "
        "delivery, nothing else",
        "ok: live: bounce@simulator: permanent bounce (General): the reader would be marked "
        "bounced and never mailed again",
        "ok: live: complaint@simulator: complaint (abuse): the reader would be marked "
        "complained and suppressed, never mailed again, even by a re-import",
    ]
    assert published == [address for address, _ in SIMULATOR]
    sent = [call for call in verified_standin.calls if call.operation == "SendEmail"]
    assert [call.params["ConfigurationSetName"] for call in sent] == ["pain-free-living"] * 3
    assert {call.params["FromEmailAddress"] for call in sent} == {
        "Pain Free Living <newsletter@painfreeliving.example.com>"}
    assert list_tables(store) == before
    assert queue_counts(account.queue_url) == (0, 0)  # applied and deleted, as a sync does


def test_doctor_live_passes_on_what_publish_setup_ses_made(
    verified_standin, settings, aws, dns_zone, monkeypatch  # noqa: F811
):
    monkeypatch.setenv("NEWSLETTER_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "ses")
    setup = runner.invoke(app, ["setup", "ses", "--nameserver", dns_zone("")])
    assert setup.exit_code == 0, setup.output
    publish_events(verified_standin, aws.url)
    names = names_for(settings)
    tokens = client("ses").get_identity_dkim_attributes(Identities=[names.domain])[
        "DkimAttributes"][names.domain]["DkimTokens"]
    nameserver = dns_zone(zone(names, tuple(tokens)))
    result = runner.invoke(app, ["doctor", "--live", "--timeout", "30",
                                 "--nameserver", nameserver])
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("ok: live: ") for line in result.output.splitlines()) == 3


def test_a_destination_that_publishes_nothing_fails_within_the_timeout(
    account, settings, store, dns_zone  # noqa: F811
):
    nameserver = dns_zone(zone(names_for(settings), account.tokens))
    started = time.monotonic()
    result = runner.invoke(app, ["doctor", "--live", "--timeout", "3",
                                 "--nameserver", nameserver])
    took = time.monotonic() - started
    assert result.exit_code == 1
    missing = [line for line in result.output.splitlines() if line.startswith("error: live:")]
    assert [line.split(" (fix: ")[0] for line in missing] == [
        f"error: live: no {kind} notification for {address} within 3 s"
        for address, kind in SIMULATOR
    ]
    assert all("event destination" in line and "publish serve" not in line for line in missing)
    assert took < 3 + 10, took  # the deadline, plus the other checks and one last receive


@pytest.mark.parametrize(
    ("code", "status", "said"),
    [
        ("MessageRejected", 400, "SES did not take the probe: MessageRejected: Email address "
         "is not verified. (SendEmail)"),
        ("AccessDenied", 403, 'not allowed to call ses:SendEmail: add it to the IAM policy in '
         'the README ("Going live")'),
    ],
)
def test_probes_ses_refuses_are_errors_and_nothing_is_waited_for(
    account, settings, store, verified_standin, dns_zone, code, status, said  # noqa: F811
):
    verified_standin.fail("SendEmail", code, "Email address is not verified.", status=status,
                          times=3)
    nameserver = dns_zone(zone(names_for(settings), account.tokens))
    started = time.monotonic()
    result = runner.invoke(app, ["doctor", "--live", "--timeout", "60",
                                 "--nameserver", nameserver])
    assert result.exit_code == 1
    assert time.monotonic() - started < 30  # not the minute it would wait for feedback
    refused = [line for line in result.output.splitlines() if line.startswith("error: live:")]
    assert [line.split(" (fix: ")[0] for line in refused] == [
        f"error: live: {name}@simulator: {said}" for name in ("success", "bounce", "complaint")
    ]
    with store.reading() as tx:
        assert list(tx.conn.execute(select(delivery_probes))) == []


def test_a_delivery_alone_does_not_answer_the_complaint_probe(
    account, settings, store, verified_standin, aws, dns_zone  # noqa: F811
):
    sns = client("sns", aws.url)

    def deliveries_only(call):
        [recipient] = call.params["Destination"]["ToAddresses"]
        body = notification("delivery", [recipient], message_id=call.response["MessageId"])
        sns.publish(TopicArn=account.topic_arn, Message=json.dumps(body))

    verified_standin.after("SendEmail", deliveries_only)
    nameserver = dns_zone(zone(names_for(settings), account.tokens))
    result = runner.invoke(app, ["doctor", "--live", "--timeout", "3",
                                 "--nameserver", nameserver])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("ok: live: success@simulator: delivered") for line in lines)
    assert any(line.startswith(
        "error: live: no complaint notification for complaint@simulator.amazonses.com within "
        "3 s (only a delivery)") for line in lines), lines


def test_through_the_webhook_doctor_waits_for_publish_serve_to_record_them(
    account, settings, store, verified_standin  # noqa: F811
):
    """`publish serve` applies each verified post as below; doctor only reads."""
    policy = Policy()

    def as_publish_serve(call):
        [recipient] = call.params["Destination"]["ToAddresses"]
        for kind in SIMULATED[recipient]:
            body = notification(kind, [recipient], shape="event-",
                                message_id=call.response["MessageId"])
            apply_notification(store, json.dumps(body), policy)

    verified_standin.after("SendEmail", as_publish_serve)
    webhook = dataclasses.replace(
        settings, events_queue_url="", sns_topic_arns=(account.topic_arn,),
        ses_configuration_set="pain-free-living")
    clients = clients_for(None)
    pauses: list[float] = []
    findings = run_live(webhook, names_for(webhook), clients.sesv2, None, store, timeout=30,
                        loop=Loop(pause=pauses.append))
    assert [f.level for f in findings] == ["ok"] * 3, findings
    assert pauses == []  # recorded before the first look: no wait at all

    # Nothing comes: the loop reads again, less and less often, until the deadline.
    verified_standin.callbacks.clear()
    moments = iter(range(1000))
    findings = run_live(webhook, names_for(webhook), clients.sesv2, None, store, timeout=5,
                        loop=Loop(clock=lambda: float(next(moments)), pause=pauses.append))
    assert [f.level for f in findings] == ["error"] * 3
    assert "publish serve is running there" in findings[0].fix
    assert pauses == sorted(pauses) and pauses[0] < pauses[-1]


def test_probes_a_day_old_are_forgotten_by_the_next_live_run(
    account, settings, store, dns_zone  # noqa: F811
):
    old = Probe("0100-old", "success@simulator.amazonses.com", "delivery",
                dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    recent = Probe("0100-recent", "success@simulator.amazonses.com", "delivery",
                   dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with store.transaction() as tx:
        probes.add(tx.conn, [old, recent])
    nameserver = dns_zone(zone(names_for(settings), account.tokens))
    result = runner.invoke(app, ["doctor", "--live", "--timeout", "1",
                                 "--nameserver", nameserver])
    assert result.exit_code == 1
    with store.reading() as tx:
        kept = set(tx.conn.execute(select(delivery_probes.c.message_id)).scalars())
    assert "0100-old" not in kept and "0100-recent" in kept
    assert len(kept) == 1 + 3  # and this run's three


# ---------------------------------------------------------------------------
# The events path, about a probe
# ---------------------------------------------------------------------------


def feedback(kind: Kind, message_id: str, recipient: str, **extra) -> Feedback:
    return Feedback(kind=kind, recipient=recipient, message_id=message_id,
                    event_id=f"{kind}:{message_id}:{recipient}", at=NOW, **extra)


def test_feedback_about_a_probe_is_kept_on_it_and_changes_nobody(store):
    complaint_to = "complaint@simulator.amazonses.com"
    with store.transaction() as tx:
        probes.add(tx.conn, [Probe("m-1", complaint_to, "complaint", NOW)])
    before = list_tables(store)

    applied = apply_feedback(store, [feedback("delivery", "m-1", complaint_to)], Policy())
    assert applied.unknown_recipients == 0 and applied.delivered == 0
    with store.reading() as tx:
        [probe] = probes.read(tx.conn, ["m-1"]).values()
    assert (probe.kind, probe.answered) == ("delivery", False)

    apply_feedback(store, [feedback("complaint", "m-1", complaint_to,
                                    detail={"complaintFeedbackType": "abuse"})], Policy())
    apply_feedback(store, [feedback("delivery", "m-1", complaint_to)], Policy())  # late
    with store.reading() as tx:
        [probe] = probes.read(tx.conn, ["m-1"]).values()
    assert (probe.kind, probe.answered, dict(probe.detail)) == (
        "complaint", True, {"complaintFeedbackType": "abuse"})
    assert list_tables(store) == before

    stranger = apply_feedback(store, [feedback("delivery", "m-2", "nobody@example.com")],
                              Policy())
    assert stranger.unknown_recipients == 1  # feedback about no probe is still ignored


def test_feedback_quicker_than_the_probe_itself_is_kept_for_it(store):
    bounce_to = "bounce@simulator.amazonses.com"
    early = feedback("bounce", "m-3", bounce_to, bounce_type="Permanent",
                     detail={"subtype": "General"})
    assert apply_feedback(store, [early], Policy()).unknown_recipients == 0
    with store.transaction() as tx:
        probes.add(tx.conn, [Probe("m-3", bounce_to, "bounce", NOW)])
    with store.reading() as tx:
        [probe] = probes.read(tx.conn, ["m-3"]).values()
    assert (probe.expected, probe.kind, probe.bounce_type, probe.created_at) == (
        "bounce", "bounce", "Permanent", NOW)
    assert probe.answered


@pytest.mark.parametrize(
    ("item", "policy", "words"),
    [
        (feedback("bounce", "m", "a@b.example", bounce_type="Transient",
                  detail={"subtype": "MailboxFull"}), Policy(transient_limit=3),
         "transient bounce (MailboxFull): recorded; the 3rd within 30 days would mark the "
         "reader bounced"),
        (feedback("bounce", "m", "a@b.example", bounce_type="Transient"),
         Policy(transient_limit=1), "the 1st within 30 days"),
        (feedback("bounce", "m", "a@b.example", bounce_type="Undetermined"), Policy(),
         "undetermined bounce: recorded, the reader stays on the list"),
    ],
)
def test_what_the_list_would_do_follows_its_policy(item, policy, words):
    assert words in consequence(item, policy)
