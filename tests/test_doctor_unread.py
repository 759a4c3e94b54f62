"""`publish doctor` when AWS refuses some of the account's reads: one error
line a refused read, naming its IAM action; every other read still made and
judged; nothing that could not be read called missing. Against the SES
stand-in (moto behind a proxy that makes the refusals)."""

from __future__ import annotations

import dataclasses

from pipeline.cli import app
from pipeline.golive.account import Unread
from pipeline.golive.doctor_ses import check_account
from pipeline.golive.names import names_for
from tests.support.dns_server import dns_zone  # noqa: F401  (fixture)
from tests.support.ses_account import SES_SPF, verified_standin  # noqa: F401  (fixture)
from tests.test_doctor import (  # noqa: F401  (fixtures)
    ACCOUNT,
    SECRET,
    TOPIC,
    account,
    healthy,
    names,
    ready,
    runner,
)

REFUSED = {
    # operation: (the IAM action, the error code that service answers with)
    "GetTopicAttributes": ("sns:GetTopicAttributes", "AuthorizationError"),
    "GetConfigurationSet": ("ses:GetConfigurationSet", "AccessDeniedException"),
    "DescribeActiveReceiptRuleSet": ("ses:DescribeActiveReceiptRuleSet", "AccessDenied"),
}


def subject_of(line: str) -> str:
    """``SNS topic`` of ``error: SNS topic: ...``; ``""`` for the summary line."""
    parts = line.split(": ")
    return parts[1] if len(parts) > 2 else ""


def refuse(standin, operation: str, code: str, action: str) -> None:
    standin.fail(operation, code, f"User: arn:aws:iam::{ACCOUNT}:user/x is not authorized "
                 f"to perform: {action}", status=403, times=100)


def test_every_refused_read_is_its_own_error_line_and_the_other_reads_still_count(
    account, verified_standin, settings, monkeypatch, dns_zone  # noqa: F811
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_DOMAIN", names_for(settings).receive_domain)
    for operation, (action, code) in REFUSED.items():
        refuse(verified_standin, operation, code, action)
    result = runner.invoke(app, ["doctor", "--nameserver", dns_zone(SES_SPF)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    lines = result.output.splitlines()
    for action, code in REFUSED.values():
        [refused] = [line for line in lines if action in line]
        assert refused.startswith("error: ")
        assert f"{code}: User: arn:aws:iam::{ACCOUNT}:user/x is not authorized" in refused
        assert refused.endswith(f"(fix: not allowed to call {action}: add it to the IAM "
                                'policy in the README ("Going live"))')
    assert (
        f"error: SNS topic: reading the SNS topic {TOPIC}: AuthorizationError: User: "
        f"arn:aws:iam::{ACCOUNT}:user/x is not authorized to perform: sns:GetTopicAttributes "
        "(GetTopicAttributes); unknown: the topic, its policy and its subscriptions "
        "(fix: not allowed to call sns:GetTopicAttributes: add it to the IAM policy in the "
        'README ("Going live"))'
    ) in lines
    # What was read still counts...
    assert "ok: SES identity: painfreeliving.example.com is verified for sending in us-east-1" \
        in lines
    assert "ok: SQS queue: only the topic may send to the queue" in lines
    assert any(line.startswith("ok: SES MAIL FROM") or line.startswith("warning: SES MAIL FROM")
               for line in lines), lines
    assert any(line.startswith("ok: DKIM: ") or line.startswith("error: DKIM: no CNAME")
               for line in lines), lines
    # ...and what depended on a refused read is neither judged nor called missing.
    refusals = {line for line in lines if "not allowed to call" in line}
    judged = [
        line for line in lines
        if subject_of(line) in ("configuration set", "event destination", "subscription",
                                "receipt rule")
        and line not in refusals
        and line != "ok: configuration set: mail is sent with pain-free-living"  # the setting
    ]
    assert judged == [], result.output
    assert [line for line in lines if line.startswith("error: SNS topic")] == [
        line for line in lines if "sns:GetTopicAttributes" in line]
    assert not any("does not exist" in line for line in lines), lines


def test_a_refused_topic_read_is_not_reported_as_a_missing_topic(
    account, verified_standin, dns_zone  # noqa: F811
):
    refuse(verified_standin, "GetTopicAttributes", "AuthorizationError", "sns:GetTopicAttributes")
    result = runner.invoke(app, ["doctor", "--nameserver", dns_zone(SES_SPF)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    [topic] = [line for line in lines if line.startswith("error: SNS topic: ")]
    assert "sns:GetTopicAttributes" in topic
    assert not any("does not exist" in line or "subscription" in subject_of(line)
                   for line in lines), lines
    assert any(line.startswith("ok: event destination: ") for line in lines), lines
    assert any(line.startswith("ok: token secret") for line in lines)  # settings checked
    assert any(line.startswith("error: DMARC: ") for line in lines)  # and DNS


def test_judges_skip_what_was_not_read(ready, names):  # noqa: F811
    unread = Unread("SNS topic", "reading the SNS topic", "AccessDenied: no", "not allowed",
                    True, "the topic", ("topic_arn", "topic_allows_ses", "topic_policy",
                                        "subscriptions"))
    state = dataclasses.replace(healthy(names), topic_arn="", topic_allows_ses=False,
                                subscriptions=(), unread=(unread,))
    webhook = dataclasses.replace(ready, sns_topic_arns=(TOPIC,))
    subjects = {f.subject for f in check_account(state, names, webhook)}
    assert "SNS topic" not in subjects and "subscription" not in subjects
    assert "SES identity" in subjects and "SQS queue" in subjects


def test_a_refused_identity_read_asks_for_no_dkim_records(
    account, verified_standin, dns_zone  # noqa: F811
):
    refuse(verified_standin, "GetEmailIdentity", "AccessDeniedException", "ses:GetEmailIdentity")
    dmarc = '_dmarc.painfreeliving.example.com. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:d@x.example"\n'
    result = runner.invoke(app, ["doctor", "--nameserver", dns_zone(SES_SPF + dmarc)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    [identity] = [line for line in lines if "ses:GetEmailIdentity" in line]
    assert identity.startswith("error: SES identity: reading the SES identity ")
    assert not any(subject_of(line) in ("DKIM", "SES DKIM", "SES MAIL FROM")
                   for line in lines), lines
    assert "ok: SNS topic: SES may publish to " + account.topic_arn in lines
    # DMARC is found and parsed, but not judged by a DKIM nobody could read.
    [dmarc_line] = [line for line in lines if subject_of(line) == "DMARC"]
    assert dmarc_line.startswith("ok: DMARC: p=reject")
    assert "not judged while DKIM is unknown" in dmarc_line and "DKIM records" not in dmarc_line


def test_a_refused_account_read_still_stops_at_one_line(
    account, verified_standin, dns_zone  # noqa: F811
):
    verified_standin.fail("GetCallerIdentity", "InvalidClientTokenId",
                          "The security token included in the request is invalid", status=403,
                          times=100)
    result = runner.invoke(app, ["doctor", "--nameserver", dns_zone(SES_SPF)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("error: SES")] == [
        "error: SES account: reading the AWS account: InvalidClientTokenId: The security token "
        "included in the request is invalid (GetCallerIdentity) (fix: check the credentials "
        "and region, then run publish doctor again)"
    ]
    assert not any(line.startswith(("ok: SES", "ok: SNS", "ok: SQS")) for line in lines)
