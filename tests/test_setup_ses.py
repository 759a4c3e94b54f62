"""`publish setup ses` against moto behind the SES stand-in, over HTTP: the
real command, read back through boto3 as AWS would show it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from pipeline.golive.clients import IAM_ACTIONS
from tests.support.dns_server import setup_ses_args

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "painfreeliving.example.com"
TOPIC = "pain-free-living-ses-events"
QUEUE = "pain-free-living-ses-events"
DLQ = "pain-free-living-ses-events-dlq"
CONFIG_SET = "pain-free-living"
ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:{TOPIC}"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{QUEUE}"
ALL_TYPES = ["bounce", "complaint", "delivery", "reject", "renderingFailure", "send"]


# `publish setup ses` reads DMARC from a zone without records, never the machine's resolver.
pytestmark = pytest.mark.usefixtures("empty_dns")


def setup(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, setup_ses_args(*args))


def client(service: str):  # type: ignore[no-untyped-def]
    return boto3.client(service, region_name="us-east-1")


def test_the_whole_setup_makes_everything_and_writes_the_names(newsletter, ses_standin) -> None:
    before = (newsletter / "newsletter.toml").read_text()
    result = setup()
    assert result.exit_code == 0, result.output
    used = {f"{c.service.replace('sesv2', 'ses')}:{c.operation}" for c in ses_standin.calls}
    out = result.stdout
    for made in ("created the SES identity painfreeliving.example.com",
                 "created the MAIL FROM domain bounce.painfreeliving.example.com",
                 f"created the configuration set {CONFIG_SET}",
                 f"created the SNS topic {TOPIC}",
                 "created the event destination pain-free-living-events",
                 f"created the SQS dead-letter queue {DLQ}",
                 f"created the SQS queue {QUEUE}",
                 f"created the subscription of the SQS queue {QUEUE} to the SNS topic {TOPIC}",
                 "updated newsletter.toml: delivery.ses_configuration_set, events.queue_url"):
        assert made in out, out

    sesv2, ses, sns, sqs = client("sesv2"), client("ses"), client("sns"), client("sqs")
    identity = sesv2.get_email_identity(EmailIdentity=DOMAIN)
    assert identity["DkimAttributes"]["SigningEnabled"] is True
    assert identity["DkimAttributes"]["NextSigningKeyLength"] == "RSA_2048_BIT"
    tokens = ses.get_identity_dkim_attributes(Identities=[DOMAIN])["DkimAttributes"][DOMAIN][
        "DkimTokens"]
    for token in tokens:  # the zone snippet names each of the three keys
        assert f"{token}._domainkey.{DOMAIN}." in out and f"{token}.dkim.amazonses.com." in out
    mail_from = ses.get_identity_mail_from_domain_attributes(Identities=[DOMAIN])
    assert mail_from["MailFromDomainAttributes"][DOMAIN] == {
        "MailFromDomain": f"bounce.{DOMAIN}", "MailFromDomainStatus": "Success",
        "BehaviorOnMXFailure": "UseDefaultValue"}
    assert f"bounce.{DOMAIN}." in out and "feedback-smtp.us-east-1.amazonses.com." in out
    assert "rua=mailto:dana@painfreeliving.example.com" in out  # the reply-to by default

    sesv2.get_configuration_set(ConfigurationSetName=CONFIG_SET)
    [destination] = ses.describe_configuration_set(
        ConfigurationSetName=CONFIG_SET, ConfigurationSetAttributeNames=["eventDestinations"]
    )["EventDestinations"]
    assert destination["Enabled"] is True
    assert sorted(destination["MatchingEventTypes"]) == ALL_TYPES
    assert destination["SNSDestination"]["TopicARN"] == TOPIC_ARN

    policy = json.loads(sns.get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"]["Policy"])
    [ours] = [s for s in policy["Statement"] if s.get("Principal") == {"Service": "ses.amazonaws.com"}]
    assert ours["Effect"] == "Allow" and ours["Action"] == "SNS:Publish"
    assert ours["Condition"] == {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}

    queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == QUEUE_ARN
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC_ARN}}
    dlq_url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    assert attributes["VisibilityTimeout"] == "60"
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("sqs", QUEUE_ARN)
    subscription_attributes = sns.get_subscription_attributes(
        SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert subscription_attributes.get("RawMessageDelivery", "false") == "false"  # envelopes

    after = (newsletter / "newsletter.toml").read_text()
    assert "# NEWSLETTER_EVENTS_QUEUE_URL" in after and after.startswith(before.split("[")[0])
    assert len(after.splitlines()) == len(before.splitlines())  # replaced in place
    settings = load_settings(newsletter)
    assert settings.ses_configuration_set == CONFIG_SET
    assert settings.events_queue_url == queue_url
    # Every call the setup made is in the IAM policy the README prints.
    assert used - {"sts:GetCallerIdentity"} <= set(IAM_ACTIONS)
    assert "sandbox" in out and "200 messages a day, 1 a second" in out
    assert "request production access" in out and "publish doctor" in out


def test_a_second_run_makes_no_change_and_says_so(newsletter, ses_standin) -> None:
    assert setup().exit_code == 0
    written = (newsletter / "newsletter.toml").read_bytes()
    ses_standin.calls_seen.clear()
    result = setup()
    assert result.exit_code == 0, result.output
    assert ses_standin.calls, "the second run read nothing"
    assert ses_standin.mutating_calls() == []
    assert f"nothing to change: SES is set up for {DOMAIN} in us-east-1" in result.stdout
    assert "created" not in result.stdout and "updated" not in result.stdout
    assert (newsletter / "newsletter.toml").read_bytes() == written


def test_a_partly_set_up_account_is_completed(newsletter, ses_standin) -> None:
    client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
    client("sns").create_topic(Name=TOPIC)  # its default policy: SES may not publish
    result = setup()
    assert result.exit_code == 0, result.output
    assert "created the SES identity" not in result.stdout
    assert "created the SNS topic" not in result.stdout
    assert f"updated the policy of the SNS topic {TOPIC}" in result.stdout
    assert "created the MAIL FROM domain" in result.stdout
    policy = json.loads(client("sns").get_topic_attributes(TopicArn=TOPIC_ARN)["Attributes"][
        "Policy"])
    sids = [s.get("Sid") for s in policy["Statement"]]
    assert "__default_statement_ID" in sids and len(sids) == 2  # the owner's statement kept
    ses_standin.calls_seen.clear()
    assert "nothing to change" in setup().stdout
    assert ses_standin.mutating_calls() == []


def test_a_too_open_queue_policy_is_narrowed(newsletter, ses_standin) -> None:
    assert setup().exit_code == 0
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    open_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(open_policy)})
    result = setup()
    assert result.exit_code == 0, result.output
    assert f"updated the policy of the SQS queue {QUEUE}" in result.stdout
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    [statement] = json.loads(policy)["Statement"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC_ARN}}


def test_dry_run_changes_nothing_and_prints_the_plan(newsletter, ses_standin) -> None:
    before = (newsletter / "newsletter.toml").read_bytes()
    result = setup("--dry-run", "--dmarc-report", "reports@dmarc.example.net")
    assert result.exit_code == 0, result.output
    assert ses_standin.calls and ses_standin.mutating_calls() == []
    assert (newsletter / "newsletter.toml").read_bytes() == before
    out = result.stdout
    assert f"would create the SES identity {DOMAIN}" in out
    assert f"would create the SQS queue {QUEUE}" in out
    assert "would write newsletter.toml: delivery.ses_configuration_set, events.queue_url" in out
    assert "created" not in out.replace("would create", "")
    assert "DNS records known so far" in out and f"; TOKEN._domainkey.{DOMAIN}." in out
    assert "rua=mailto:reports@dmarc.example.net" in out
    assert client("sns").list_topics()["Topics"] == []


def test_a_dmarc_report_address_that_is_none_is_one_line(newsletter, ses_standin) -> None:
    result = setup("--dmarc-report", "reports at example")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --dmarc-report: 'reports at example' is not an email address")
    assert ses_standin.calls == []


def test_webhook_subscribes_the_site_and_keeps_other_topics(newsletter, ses_standin) -> None:
    config = newsletter / "newsletter.toml"
    other = "arn:aws:sns:us-east-1:123456789012:someone-elses"
    config.write_text(config.read_text().replace(
        "sns_topic_arns = []", f'sns_topic_arns = ["{other}"]'))
    result = setup("--webhook")
    assert result.exit_code == 0, result.output
    assert "created the subscription of https://painfreeliving.example.com/ses/events" in (
        result.stdout)
    [subscription] = client("sns").list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == (
        "https", "https://painfreeliving.example.com/ses/events")
    assert client("sqs").list_queues().get("QueueUrls", []) == []  # no queue with --webhook
    settings = load_settings(newsletter)
    assert settings.sns_topic_arns == (other, TOPIC_ARN)
    assert settings.events_queue_url == ""
    assert "# NEWSLETTER_SNS_TOPIC_ARNS" in config.read_text()


def test_webhook_needs_an_https_site(newsletter, ses_standin) -> None:
    config = newsletter / "newsletter.toml"
    config.write_text(config.read_text().replace(
        '"https://painfreeliving.example.com"', '"http://painfreeliving.example.com"'))
    result = setup("--webhook")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: newsletter.site_url: --webhook")
    assert len(result.stderr.splitlines()) == 1
    assert ses_standin.calls == []


def _active_rules() -> tuple[str, list[dict]]:
    active = client("ses").describe_active_receipt_rule_set()
    return active.get("Metadata", {}).get("Name", ""), active.get("Rules", [])


def test_receive_adds_a_rule_in_its_own_active_rule_set(newsletter, ses_standin) -> None:
    result = setup("--receive")
    assert result.exit_code == 0, result.output
    name, [rule] = _active_rules()
    assert name == "pain-free-living"
    assert rule["Name"] == "pain-free-living-unsubscribe" and rule["Enabled"] is True
    assert rule["Recipients"] == [f"list.{DOMAIN}"] and rule["ScanEnabled"] is True
    assert rule["Actions"] == [{"SNSAction": {"TopicArn": TOPIC_ARN, "Encoding": "UTF-8"}}]
    assert load_settings(newsletter).unsubscribe_domain == f"list.{DOMAIN}"
    assert f"list.{DOMAIN}." in result.stdout and "inbound-smtp.us-east-1.amazonaws.com." in (
        result.stdout)
    ses_standin.calls_seen.clear()
    assert "nothing to change" in setup("--receive").stdout
    assert ses_standin.mutating_calls() == []


def test_receive_joins_someone_elses_active_rule_set(newsletter, ses_standin) -> None:
    ses = client("ses")
    ses.create_receipt_rule_set(RuleSetName="support-desk")
    ses.create_receipt_rule(RuleSetName="support-desk", Rule={
        "Name": "tickets", "Enabled": True, "Recipients": ["support.example.org"], "Actions": []})
    ses.set_active_receipt_rule_set(RuleSetName="support-desk")
    result = setup("--receive")
    assert result.exit_code == 0, result.output
    name, rules = _active_rules()
    assert name == "support-desk"  # still theirs, not replaced
    assert sorted(r["Name"] for r in rules) == ["pain-free-living-unsubscribe", "tickets"]
    assert ses.list_receipt_rule_sets()["RuleSets"][0]["Name"] == "support-desk"
    assert len(ses.list_receipt_rule_sets()["RuleSets"]) == 1


def test_receive_is_refused_where_ses_does_not_receive_mail(newsletter, ses_standin) -> None:
    result = setup("--receive", "--region", "eu-north-1")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --receive: SES does not receive mail in eu-north-1")
    assert "us-east-1" in line and ses_standin.calls == []


def test_an_environment_variable_that_overrides_a_written_key_is_a_warning(
    newsletter, ses_standin, monkeypatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_EVENTS_QUEUE_URL", "https://sqs.example/old")
    result = setup()
    assert result.exit_code == 0, result.output
    assert ("warning: NEWSLETTER_EVENTS_QUEUE_URL is set and overrides events.queue_url "
            "in newsletter.toml") in result.stdout
    data = tomllib.loads((newsletter / "newsletter.toml").read_text())
    assert data["events"]["queue_url"].endswith(f"/{QUEUE}")


def test_readme_policy_lists_every_action() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    heading = re.search(r"^#+ Going live.*$", readme, re.M)
    assert heading, "the README has no Going live section"
    section = re.split(r"^## ", readme[heading.end():], maxsplit=1, flags=re.M)[0]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "the README's Going live section has no ```json policy"
    document = json.loads(block.group(1))
    listed = {action for statement in document["Statement"]
              for action in ([statement["Action"]] if isinstance(statement["Action"], str)
                             else statement["Action"])}
    assert listed == set(IAM_ACTIONS)
