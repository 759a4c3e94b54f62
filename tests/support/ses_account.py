"""An SES account wired for the test newsletter, made through boto3 the way
`publish setup ses` makes it, behind the SES stand-in; SES's own part of the
live loop (publishing a message's events to the configuration set's topic);
and the DNS zone that goes with the account.

    verified_standin     the stand-in, answering GetEmailIdentity as SES does
                         once it has seen the DKIM records: verified, DKIM
                         SUCCESS (moto leaves every domain unverified)
    set_up_account(...)  identity, MAIL FROM, configuration set, topic, event
                         destination, queue with dead-letter queue and policy,
                         subscription; optionally the receipt rule
    publish_events(...)  standin.after("SendEmail", ...): the mailbox
                         simulator's notifications, in either SES shape
    zone(names, tokens)  the zone `publish setup ses` asks for
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest

from pipeline.golive.names import EVENT_TYPES, Names
from pipeline.golive.records import dns_records, zone_snippet
from tests.support.ses_samples import notification
from tests.support.ses_standin import Call, SesStandin

REGION = "us-east-1"
ACCOUNT = "123456789012"
SES_SPF = 'amazonses.com. 3600 IN TXT "v=spf1 ip4:199.255.192.0/22 ip4:54.240.0.0/18 -all"\n'
"""The record SES publishes, which the zone stands in for."""
SIMULATED = {
    "success@simulator.amazonses.com": ("delivery",),
    "bounce@simulator.amazonses.com": ("bounce-permanent",),
    "complaint@simulator.amazonses.com": ("delivery", "complaint"),
}
"""What SES's mailbox simulator answers each address with."""


class VerifiedStandin(SesStandin):
    """The stand-in, with every domain identity verified and signing."""

    def _upstream(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers, answer = super()._upstream(request, body)
        path = request.path.split("?", 1)[0]
        if request.command == "GET" and path.startswith("/v2/email/identities/") \
                and path.count("/") == 4 and status == 200:
            found = json.loads(answer)
            found["VerifiedForSendingStatus"] = True
            found.setdefault("DkimAttributes", {})["Status"] = "SUCCESS"
            answer = json.dumps(found).encode()
        return status, headers, answer


@pytest.fixture
def verified_standin(aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[VerifiedStandin]:
    standin = VerifiedStandin(upstream=aws.url)
    standin.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", standin.url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    try:
        yield standin
    finally:
        standin.stop()


@dataclass(frozen=True)
class Account:
    topic_arn: str
    queue_url: str
    dead_letter_url: str
    tokens: tuple[str, ...]


def client(service: str, endpoint: str | None = None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def set_up_account(names: Names, *, receive: bool = False) -> Account:
    """What `publish setup ses` makes, through AWS_ENDPOINT_URL."""
    sesv2, ses, sns, sqs = (client(s) for s in ("sesv2", "ses", "sns", "sqs"))
    sesv2.create_email_identity(EmailIdentity=names.domain)
    ses.set_identity_mail_from_domain(Identity=names.domain,
                                      MailFromDomain=names.mail_from_domain)
    sesv2.create_configuration_set(ConfigurationSetName=names.configuration_set)
    topic = sns.create_topic(Name=names.topic)["TopicArn"]
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ses-publishes",
            "Effect": "Allow",
            "Principal": {"Service": "ses.amazonaws.com"},
            "Action": "SNS:Publish",
            "Resource": topic,
            "Condition": {"StringEquals": {"AWS:SourceAccount": ACCOUNT}},
        }],
    }))
    ses.create_configuration_set_event_destination(
        ConfigurationSetName=names.configuration_set,
        EventDestination={
            "Name": names.event_destination,
            "Enabled": True,
            "MatchingEventTypes": [_v1(kind) for kind in EVENT_TYPES],
            "SNSDestination": {"TopicARN": topic},
        },
    )
    dead = sqs.create_queue(QueueName=names.dead_letter_queue)["QueueUrl"]
    dead_arn = _queue_arn(sqs, dead)
    queue = sqs.create_queue(QueueName=names.queue, Attributes={
        "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "5"}),
    })["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue)
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
        }],
    })})
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    if receive:
        ses.create_receipt_rule_set(RuleSetName=names.rule_set)
        ses.create_receipt_rule(RuleSetName=names.rule_set, Rule={
            "Name": names.rule,
            "Enabled": True,
            "Recipients": [names.receive_domain],
            "Actions": [{"SNSAction": {"TopicArn": topic, "Encoding": "UTF-8"}}],
            "ScanEnabled": True,
        })
        ses.set_active_receipt_rule_set(RuleSetName=names.rule_set)
    tokens = ses.get_identity_dkim_attributes(Identities=[names.domain])[
        "DkimAttributes"][names.domain]["DkimTokens"]
    return Account(topic, queue, dead, tuple(tokens))


def _v1(kind: str) -> str:
    first, *rest = kind.lower().split("_")
    return first + "".join(word.capitalize() for word in rest)


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"])


def publish_events(standin: SesStandin, moto_url: str, *, shape: str = "event-") -> list[str]:
    """Have every SendEmail through the stand-in publish what the mailbox
    simulator answers to the topic of its configuration set's SNS event
    destination, as SES does; the recipients it published for, as they come."""
    ses, sns = client("ses", moto_url), client("sns", moto_url)
    published: list[str] = []

    def after(call: Call) -> None:
        if call.status != 200 or not isinstance(call.response, dict):
            return
        [recipient] = call.params["Destination"]["ToAddresses"]
        described = ses.describe_configuration_set(
            ConfigurationSetName=call.params["ConfigurationSetName"],
            ConfigurationSetAttributeNames=["eventDestinations"],
        )
        topics = [d["SNSDestination"]["TopicARN"] for d in described["EventDestinations"]
                  if d.get("Enabled") and "SNSDestination" in d]
        for kind in SIMULATED.get(recipient, ()):
            body = notification(kind, [recipient], shape=shape,
                                message_id=str(call.response["MessageId"]))
            for topic in topics:
                sns.publish(TopicArn=topic, Message=json.dumps(body))
        published.append(recipient)

    standin.after("SendEmail", after)
    return published


def zone(names: Names, tokens: tuple[str, ...], *, receive: bool = False) -> str:
    """The zone `publish setup ses` prints for the account, and SES's own SPF."""
    report = f"dmarc@{names.domain}"
    return zone_snippet(dns_records(names, REGION, tokens, report, receive=receive)) + SES_SPF
