"""The SES stand-in names each call as IAM does, answers GetAccount, and
makes the faults a test asks for in each protocol's own error shape."""

from __future__ import annotations

import threading

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def _client(standin, service):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        service,
        endpoint_url=standin.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_calls_are_named_by_operation_and_forwarded(ses_standin) -> None:
    sesv2 = _client(ses_standin, "sesv2")
    sesv2.create_email_identity(EmailIdentity="example.com")
    sesv2.get_email_identity(EmailIdentity="example.com")
    _client(ses_standin, "ses").get_identity_mail_from_domain_attributes(Identities=["example.com"])
    _client(ses_standin, "sns").create_topic(Name="t")
    _client(ses_standin, "sqs").create_queue(QueueName="q")
    assert [(c.service, c.operation) for c in ses_standin.calls] == [
        ("sesv2", "CreateEmailIdentity"),
        ("sesv2", "GetEmailIdentity"),
        ("ses", "GetIdentityMailFromDomainAttributes"),
        ("sns", "CreateTopic"),
        ("sqs", "CreateQueue"),
    ]
    assert ses_standin.mutating_calls() == ["CreateEmailIdentity", "CreateTopic", "CreateQueue"]


def test_get_account_is_answered_in_the_sandbox(ses_standin) -> None:
    account = _client(ses_standin, "sesv2").get_account()
    assert account["ProductionAccessEnabled"] is False
    assert account["SendQuota"]["Max24HourSend"] == 200
    ses_standin.account["ProductionAccessEnabled"] = True
    assert _client(ses_standin, "sesv2").get_account()["ProductionAccessEnabled"] is True


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("sesv2", lambda c: c.create_configuration_set(ConfigurationSetName="x")),
        ("ses", lambda c: c.create_configuration_set(ConfigurationSet={"Name": "x"})),
        ("sns", lambda c: c.create_topic(Name="x")),
        ("sqs", lambda c: c.create_queue(QueueName="x")),
    ],
)
def test_a_failure_is_answered_once_in_the_protocols_shape(ses_standin, service, call) -> None:
    operation = "CreateTopic" if service == "sns" else (
        "CreateQueue" if service == "sqs" else "CreateConfigurationSet"
    )
    ses_standin.fail(operation, "AccessDenied", "not authorized", status=403)
    client = _client(ses_standin, service)
    with pytest.raises(ClientError) as caught:
        call(client)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    call(client)  # only once


def test_a_held_call_waits_for_release(ses_standin) -> None:
    held = ses_standin.hold("CreateTopic")
    sns = _client(ses_standin, "sns")
    done = threading.Event()

    def create() -> None:
        sns.create_topic(Name="t")
        done.set()

    worker = threading.Thread(target=create)
    worker.start()
    assert held.arrived.wait(10)
    assert not done.is_set()
    held.release()
    assert done.wait(10)
    worker.join(10)


def test_after_sees_the_answer(ses_standin) -> None:
    seen: list[object] = []
    ses_standin.after("CreateTopic", seen.append)
    arn = _client(ses_standin, "sns").create_topic(Name="t")["TopicArn"]
    assert len(seen) == 1 and arn.encode() in seen[0].response  # type: ignore[attr-defined]
