"""`publish doctor`: the settings and account checks as pure functions of
what was read, and the command against the SES stand-in (moto behind a
proxy that answers what moto lacks) with a silent name server."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Settings
from pipeline.golive.account import (
    AccountState,
    DestinationState,
    IdentityState,
    MailFromState,
    QueueState,
    QuotaState,
    ReceiptState,
    SubscriptionState,
)
from pipeline.golive.doctor_ses import check_account, queue_arn, quota_line
from pipeline.golive.doctor_settings import check_settings
from pipeline.golive.findings import Finding
from pipeline.golive.names import EVENT_TYPES, Names, names_for
from pipeline.settings_spec import Address
from subscribers.tokens import MAKE_ONE
from tests.support.dns_server import dns_zone, silent_dns  # noqa: F401  (fixtures)
from tests.support.ses_account import (  # noqa: F401  (fixtures)
    SES_SPF,
    Account,
    set_up_account,
    verified_standin,
    zone,
)

runner = CliRunner()
SECRET = "k3J9-vQx_28LmZp0aTt7WcYr4NhB5sEu"
REGION = "us-east-1"
ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:pain-free-living-ses-events"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/pain-free-living-ses-events"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:pain-free-living-ses-events"
DLQ_ARN = QUEUE_ARN + "-dlq"


def by_level(findings: list[Finding], level: str) -> list[str]:
    return [finding.line() for finding in findings if finding.level == level]


def problems(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.level != "ok"]


# ---------------------------------------------------------------------------
# The settings
# ---------------------------------------------------------------------------


@pytest.fixture
def ready(settings: Settings) -> Settings:
    """The test newsletter's settings as `publish setup ses` leaves them."""
    return dataclasses.replace(
        settings,
        transport="ses",
        token_secret=SECRET,
        ses_configuration_set="pain-free-living",
        events_queue_url=QUEUE_URL,
    )


def test_settings_ready_to_go_live_have_no_problem(ready):
    findings = check_settings(ready)
    assert problems(findings) == []
    assert {f.subject for f in findings} >= {
        "site", "token secret", "postal address", "transport", "configuration set",
        "events path", "sender", "reply-to", "unsubscribe mailto",
    }


def test_the_test_newsletters_own_settings_are_not_ready(settings):
    findings = check_settings(settings)
    errors = by_level(findings, "error")
    assert any("NEWSLETTER_TOKEN_SECRET is not set" in line and MAKE_ONE in line
               for line in errors)
    assert any("delivery.ses_configuration_set is not set" in line for line in errors)
    assert any("neither events.queue_url nor events.sns_topic_arns" in line
               and "publish setup ses" in line for line in errors)
    assert by_level(findings, "warning") == [
        "warning: transport: delivery.transport is outbox, not ses: issues are not sent "
        "through the SES account checked here (fix: set delivery.transport = \"ses\" "
        "(NEWSLETTER_TRANSPORT=ses) to send through it)"
    ]


@pytest.mark.parametrize(
    ("change", "subject", "words"),
    [
        ({"site_url": "http://painfreeliving.example.com"}, "site", "not https"),
        ({"token_secret": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, "token secret", "too weak"),
        ({"token_secret": "Xy7_short"}, "token secret", "too short"),
        ({"postal_address": ""}, "postal address", "CAN-SPAM"),
        ({"ses_configuration_set": ""}, "configuration set", "never publish"),
        ({"events_queue_url": ""}, "events path", "never reach the list"),
        ({"sender": Address("me@gmail.com", "Me")}, "sender", "gmail.com"),
        ({"reply_to": Address("")}, "reply-to", "not set"),
    ],
)
def test_each_broken_setting_is_an_error_with_its_fix(ready, change, subject, words):
    findings = check_settings(dataclasses.replace(ready, **change))
    [found] = problems(findings)
    assert (found.level, found.subject) == ("error", subject)
    assert words in found.message
    assert found.fix
    for value in change.values():
        if isinstance(value, str) and "secret" in found.subject and value:
            assert value not in found.line()  # a weak secret is described, never shown


def test_a_webhook_events_path_is_named_by_its_url(ready):
    webhook = dataclasses.replace(ready, events_queue_url="", sns_topic_arns=(TOPIC,))
    [path] = [f for f in check_settings(webhook) if f.subject == "events path"]
    assert path.level == "ok"
    assert "https://painfreeliving.example.com/ses/events (publish serve)" in path.message


# ---------------------------------------------------------------------------
# The account
# ---------------------------------------------------------------------------


@pytest.fixture
def names(ready) -> Names:
    return names_for(ready)


def healthy(names: Names) -> AccountState:
    """An account as `publish setup ses` leaves it, out of the sandbox."""
    return AccountState(
        region=REGION,
        account_id=ACCOUNT,
        identity=IdentityState(True, "SUCCESS", ("t1", "t2", "t3")),
        mail_from=MailFromState(names.mail_from_domain, "Success"),
        configuration_set=True,
        destination=DestinationState(names.event_destination, True, EVENT_TYPES, TOPIC),
        topic_arn=TOPIC,
        topic_allows_ses=True,
        subscriptions=(SubscriptionState("sqs", QUEUE_ARN, TOPIC + ":sub-1"),),
        queue=QueueState(QUEUE_URL, QUEUE_ARN, True, DLQ_ARN),
        dead_letter_queue_arn=DLQ_ARN,
        receipt=ReceiptState(names.rule_set, names.rule, (names.receive_domain,), TOPIC, True),
        active_rule_set=names.rule_set,
        quota=QuotaState(False, True, 50000, 14, 120),
        service_configuration_set=True,
        service_destination=DestinationState(names.service_event_destination, True,
                                             EVENT_TYPES, TOPIC),
    )


def test_a_healthy_account_has_no_problem(ready, names):
    with_mailto = dataclasses.replace(ready, unsubscribe_domain=names.receive_domain)
    findings = check_account(healthy(names), names, with_mailto)
    assert problems(findings) == []
    assert "ok: SES quota: 50000 a day, 14 a second, 120 sent in the last 24 h" in [
        f.line() for f in findings]
    assert "ok: receipt rule: mail to list.painfreeliving.example.com reaches the events path" \
        in [f.line() for f in findings]


def test_the_quota_line_reads_like_a_sentence():
    assert quota_line(QuotaState(True, True, 200.0, 1.0, 12.0)) == (
        "200 a day, 1 a second, 12 sent in the last 24 h")
    assert quota_line(QuotaState(False, True, -1, 0.5, 0)) == (
        "no daily limit, 0.5 a second, 0 sent in the last 24 h")


def _state(**change) -> Callable[[AccountState], AccountState]:
    return lambda state: dataclasses.replace(state, **change)


def _destination(**change) -> Callable[[AccountState], AccountState]:
    def edit(state: AccountState) -> AccountState:
        assert state.destination is not None
        return dataclasses.replace(
            state, destination=dataclasses.replace(state.destination, **change))
    return edit


BROKEN = {
    "no identity": (_state(identity=None, mail_from=None), "error", "SES identity",
                    "no identity for painfreeliving.example.com in us-east-1",
                    "publish setup ses"),
    "unverified": (_state(identity=IdentityState(False, "SUCCESS", ())), "error",
                   "SES identity", "not verified", "DKIM records"),
    "DKIM pending": (_state(identity=IdentityState(True, "PENDING", ())), "warning",
                     "SES DKIM", "DNS records not seen yet, can take up to 72 h", "CNAME"),
    "DKIM failed": (_state(identity=IdentityState(True, "FAILED", ())), "error", "SES DKIM",
                    "FAILED", "publish setup ses again"),
    "no MAIL FROM": (_state(mail_from=None), "error", "SES MAIL FROM", "SPF does not align",
                     "publish setup ses"),
    "MAIL FROM pending": (_state(mail_from=MailFromState("bounce.painfreeliving.example.com",
                                                         "Pending")),
                          "warning", "SES MAIL FROM", "Pending", "MX and TXT"),
    "MAIL FROM failed": (_state(mail_from=MailFromState("bounce.painfreeliving.example.com",
                                                        "Failed")),
                         "error", "SES MAIL FROM", "amazonses.com instead", "MX and TXT"),
    "sandbox": (_state(quota=QuotaState(True, True, 200, 1, 0)), "warning", "SES sandbox",
                "only verified addresses receive mail", "Request production access"),
    "sending paused": (_state(quota=QuotaState(False, False, 50000, 14, 0)), "error",
                       "SES sending", "paused", "resume sending"),
    "quota nearly used": (_state(quota=QuotaState(False, True, 200, 1, 161)), "warning",
                          "SES quota", "200 a day, 1 a second, 161 sent in the last 24 h",
                          "quota increase"),
    "quota unread": (_state(quota=None), "warning", "SES sending", "GetAccount",
                     "ses:GetAccount"),
    "no configuration set": (_state(configuration_set=False, destination=None), "error",
                             "configuration set", "pain-free-living does not exist",
                             "publish setup ses"),
    "no destination": (_state(destination=None), "error", "event destination",
                       "SEND, DELIVERY, BOUNCE, COMPLAINT, REJECT, RENDERING_FAILURE",
                       "publish setup ses"),
    "destination disabled": (_destination(enabled=False), "error", "event destination",
                             "is disabled", "publish setup ses"),
    "types missing": (_destination(event_types=("SEND", "DELIVERY", "REJECT")), "error",
                      "event destination", "does not publish BOUNCE, COMPLAINT, "
                      "RENDERING_FAILURE", "publish setup ses"),
    "another topic": (_destination(topic_arn=TOPIC + "-old"), "error", "event destination",
                      f"publishes to {TOPIC}-old, not to {TOPIC}", "publish setup ses"),
    "no topic": (_state(topic_arn="", topic_allows_ses=False, subscriptions=()), "error",
                 "SNS topic", "pain-free-living-ses-events does not exist",
                 "publish setup ses"),
    "topic policy": (_state(topic_allows_ses=False), "error", "SNS topic",
                     "does not let SES publish", "sets the policy"),
    "no subscription": (_state(subscriptions=(SubscriptionState(
        "sqs", QUEUE_ARN + "-other", TOPIC + ":x"),)), "error", "subscription",
        f"no subscription for the queue of events.queue_url ({QUEUE_ARN})",
        "publish setup ses"),
    "no queue": (_state(queue=None), "error", "SQS queue", "does not exist",
                 "publish setup ses"),
    "another queue": (_state(queue=QueueState(QUEUE_URL + "-2", QUEUE_ARN + "-2", True,
                                              DLQ_ARN)),
                      "warning", "SQS queue", "not checked", f"set events.queue_url to "
                      f"{QUEUE_URL}-2"),
    "queue open to all": (_state(queue=QueueState(QUEUE_URL, QUEUE_ARN, False, DLQ_ARN)),
                          "error", "SQS queue", "does not restrict SendMessage",
                          "sets the policy"),
    "no dead letters": (_state(queue=QueueState(QUEUE_URL, QUEUE_ARN, True, "")), "warning",
                        "SQS queue", "no dead-letter queue", "pain-free-living-ses-events-dlq"),
    "few receives": (_state(queue=QueueState(QUEUE_URL, QUEUE_ARN, True, DLQ_ARN, 1)),
                     "warning", "SQS queue", "after 1 receives", "maxReceiveCount to 5"),
    "no receipt rule": (_state(receipt=None), "warning", "receipt rule",
                        "no rule in the active rule set pain-free-living receives",
                        "publish setup ses --receive"),
    "rule set inactive": (_state(receipt=None, active_rule_set="", inactive_receipt=ReceiptState(
        "pain-free-living", "pain-free-living-unsubscribe", ("list.painfreeliving.example.com",),
        TOPIC, True)), "warning", "receipt rule", "which is not active", "activates"),
    "rule disabled": (_state(receipt=ReceiptState(
        "pain-free-living", "pain-free-living-unsubscribe", ("list.painfreeliving.example.com",),
        TOPIC, False)), "warning", "receipt rule", "is disabled", "--receive"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_part_of_the_account_is_one_finding_with_its_fix(ready, names, case):
    edit, level, subject, words, fix = BROKEN[case]
    with_mailto = dataclasses.replace(ready, unsubscribe_domain=names.receive_domain)
    findings = check_account(edit(healthy(names)), names, with_mailto)
    found = problems(findings)
    assert [(f.level, f.subject) for f in found] == [(level, subject)], found
    assert words in found[0].message
    assert fix in found[0].fix


def test_the_webhook_subscription_must_be_confirmed_and_its_topic_listed(ready, names):
    url = "https://painfreeliving.example.com/ses/events"
    webhook = dataclasses.replace(ready, events_queue_url="", sns_topic_arns=(TOPIC,))
    pending = _state(subscriptions=(SubscriptionState("https", url, "PendingConfirmation"),))
    [found] = problems(check_account(pending(healthy(names)), names, webhook))
    assert found.message == f"the subscription of {url} is PendingConfirmation"
    assert "start publish serve so it confirms" in found.fix

    confirmed = _state(subscriptions=(SubscriptionState("https", url, TOPIC + ":s"),))
    assert problems(check_account(confirmed(healthy(names)), names, webhook)) == []
    [missing] = problems(check_account(healthy(names), names, webhook))
    assert f"no https subscription for {url}" in missing.message
    assert "publish setup ses --webhook" in missing.fix

    elsewhere = dataclasses.replace(webhook, sns_topic_arns=(TOPIC + "-other",))
    [unlisted] = problems(check_account(confirmed(healthy(names)), names, elsewhere))
    assert f"events.sns_topic_arns does not list {TOPIC}" in unlisted.message


def test_no_receipt_rule_is_asked_for_without_an_unsubscribe_domain(ready, names):
    assert problems(check_account(_state(receipt=None)(healthy(names)), names, ready)) == []


def test_the_queue_arn_comes_from_the_queue_url():
    assert queue_arn(QUEUE_URL, "eu-west-1") == QUEUE_ARN
    assert queue_arn("http://127.0.0.1:5000/123456789012/q", "eu-west-1") == (
        "arn:aws:sqs:eu-west-1:123456789012:q")
    assert queue_arn("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "us-east-1") == (
        "arn:aws-cn:sqs:cn-north-1:1:q")


# ---------------------------------------------------------------------------
# The command, against the stand-in
# ---------------------------------------------------------------------------


@pytest.fixture
def account(verified_standin, settings, monkeypatch) -> Account:  # noqa: F811
    """The test newsletter's account set up, and its settings pointing at it."""
    made = set_up_account(names_for(settings))
    for key, value in {
        "NEWSLETTER_TOKEN_SECRET": SECRET,
        "NEWSLETTER_TRANSPORT": "ses",
        "NEWSLETTER_SES_CONFIGURATION_SET": "pain-free-living",
        "NEWSLETTER_EVENTS_QUEUE_URL": made.queue_url,
    }.items():
        monkeypatch.setenv(key, value)
    return made


def test_doctor_on_a_set_up_account_reports_the_dns_it_cannot_read(account, silent_dns):  # noqa: F811
    result = runner.invoke(app, ["doctor", "--nameserver", silent_dns])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert "ok: SES identity: painfreeliving.example.com is verified for sending in us-east-1" \
        in lines
    assert "ok: SES quota: 200 a day, 1 a second, 0 sent in the last 24 h" in lines
    assert "warning: SES sandbox: the account is in the sandbox: only verified addresses " \
        "receive mail (fix: request production access: SES console → Account dashboard → " \
        "Request production access)" in lines
    errors = [line for line in lines if line.startswith("error:")]
    assert errors and all(f"no answer from {silent_dns}" in line for line in errors), errors
    assert not any(line.startswith("error:") and "SES" in line for line in lines)
    summary = re.fullmatch(r"(\d+) checks: (\d+) errors?, 1 warning", lines[-1])
    assert summary, lines[-1]
    assert int(summary[1]) == len(lines) - 1 and int(summary[2]) == len(errors)


def test_doctor_passes_with_the_zone_setup_prints(account, settings, dns_zone):  # noqa: F811
    nameserver = dns_zone(zone(names_for(settings), account.tokens))
    result = runner.invoke(app, ["doctor", "--nameserver", nameserver])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith(": 0 errors, 1 warning")
    assert not any("receipt rule" in line or "receiving" in line
                   for line in result.output.splitlines())


def test_with_an_unsubscribe_domain_doctor_checks_its_rule_and_mx(
    verified_standin, settings, dns_zone, monkeypatch  # noqa: F811
):
    names = names_for(settings)
    made = set_up_account(names, receive=True)
    for key, value in {
        "NEWSLETTER_TOKEN_SECRET": SECRET,
        "NEWSLETTER_TRANSPORT": "ses",
        "NEWSLETTER_SES_CONFIGURATION_SET": "pain-free-living",
        "NEWSLETTER_EVENTS_QUEUE_URL": made.queue_url,
        "NEWSLETTER_UNSUBSCRIBE_DOMAIN": names.receive_domain,
    }.items():
        monkeypatch.setenv(key, value)
    with_mx = dns_zone(zone(names, made.tokens, receive=True))
    result = runner.invoke(app, ["doctor", "--nameserver", with_mx])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "ok: receipt rule: mail to list.painfreeliving.example.com reaches the events path" \
        in lines
    assert any(line.startswith("ok: receiving: ") for line in lines), lines

    without_mx = dns_zone(zone(names, made.tokens, receive=False))
    result = runner.invoke(app, ["doctor", "--nameserver", without_mx])
    assert result.exit_code == 1
    assert any(line.startswith("error: receiving: ") for line in result.output.splitlines())


def test_doctor_names_what_is_missing_from_the_account(
    verified_standin, settings, monkeypatch, dns_zone  # noqa: F811
):
    monkeypatch.setenv("NEWSLETTER_EVENTS_QUEUE_URL",
                       f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/pain-free-living-ses-events")
    result = runner.invoke(app, ["doctor", "--nameserver", dns_zone(SES_SPF)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for expected in (
        "error: SES identity: no identity for painfreeliving.example.com in us-east-1 "
        "(fix: run publish setup ses)",
        "error: configuration set: pain-free-living does not exist in us-east-1 "
        "(fix: run publish setup ses)",
        "error: SNS topic: pain-free-living-ses-events does not exist in us-east-1 "
        "(fix: run publish setup ses)",
        "error: SQS queue: pain-free-living-ses-events does not exist in us-east-1 "
        "(fix: run publish setup ses)",
    ):
        assert expected in lines


def test_without_credentials_doctor_says_so_in_one_line(settings, monkeypatch, silent_dns):  # noqa: F811
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = runner.invoke(app, ["doctor", "--region", REGION, "--nameserver", silent_dns])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY)"
    ]


def test_without_a_region_doctor_says_so_in_one_line(settings, monkeypatch, silent_dns):  # noqa: F811
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result = runner.invoke(app, ["doctor", "--nameserver", silent_dns])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no AWS region (set AWS_REGION or a profile's region, or give --region)"
    ]


def test_a_malformed_nameserver_is_refused_before_any_aws_call(account, verified_standin):  # noqa: F811
    before = len(verified_standin.calls)
    result = runner.invoke(app, ["doctor", "--nameserver", "ns.example.com"])
    assert result.exit_code == 1
    assert result.output.startswith("error: --nameserver 'ns.example.com': expected IP[:PORT]")
    assert len(verified_standin.calls) == before
