"""SNS signature checks: genuine messages pass; forged, altered, stale,
foreign and oddly-certified ones are refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from subscribers.sns import SnsRejected, SnsVerifier, is_sns_url
from tests.support.sns import CERT_URL, TOPIC, make_certificate


def verifier(fake_sns, topics=(TOPIC,)):
    return SnsVerifier(topics, fetch=fake_sns.fetch)


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_genuine_notification_verifies(fake_sns, version):
    message = fake_sns.notification('{"notificationType": "Delivery"}', version=version)
    verified = verifier(fake_sns).verify(json.dumps(message))
    assert verified.type == "Notification"
    assert verified.topic_arn == TOPIC
    assert verified.message == '{"notificationType": "Delivery"}'


def test_the_certificate_is_fetched_once_and_cached(fake_sns):
    check = verifier(fake_sns)
    for _ in range(3):
        check.verify(json.dumps(fake_sns.notification("{}")))
    assert fake_sns.fetched == [CERT_URL]


def test_subject_is_part_of_the_signature(fake_sns):
    message = fake_sns.sign({**fake_sns.notification("{}"), "Subject": "Amazon SES Email Event Notification"})
    verifier(fake_sns).verify(json.dumps(message))
    message["Subject"] = "changed"
    with pytest.raises(SnsRejected, match="signature does not match"):
        verifier(fake_sns).verify(json.dumps(message))


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "Type"])
def test_an_altered_field_is_refused(fake_sns, field):
    message = fake_sns.notification('{"notificationType": "Bounce"}')
    if field == "Timestamp":
        message[field] = message[field].replace(".", "1.", 1)[:-5] + "0Z"
    elif field == "Type":
        message[field] = "SubscriptionConfirmation"
    else:
        message[field] = message[field] + "x"
    with pytest.raises(SnsRejected):
        verifier(fake_sns).verify(json.dumps(message))


def test_a_forged_signature_is_refused(fake_sns):
    other_key, _ = make_certificate()
    message = fake_sns.sign(fake_sns.notification("{}"), key=other_key)
    with pytest.raises(SnsRejected, match="signature does not match"):
        verifier(fake_sns).verify(json.dumps(message))


def test_a_stale_or_future_message_is_refused(fake_sns):
    stale = fake_sns.notification("{}", age=dt.timedelta(hours=1, minutes=1))
    with pytest.raises(SnsRejected, match="older than an hour"):
        verifier(fake_sns).verify(json.dumps(stale))
    future = fake_sns.notification("{}", age=-dt.timedelta(hours=1))
    with pytest.raises(SnsRejected, match="from the future"):
        verifier(fake_sns).verify(json.dumps(future))


def test_another_topic_is_refused_before_any_fetch(fake_sns):
    message = fake_sns.notification("{}", topic="arn:aws:sns:us-east-1:999999999999:other")
    with pytest.raises(SnsRejected, match="topic is not configured"):
        verifier(fake_sns).verify(json.dumps(message))
    assert fake_sns.fetched == []


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.amazonaws.com@evil.example/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com/cert.txt",
    ],
)
def test_certificate_urls_off_sns_are_refused(fake_sns, url):
    message = fake_sns.sign({**fake_sns.notification("{}"), "SigningCertURL": url})
    with pytest.raises(SnsRejected, match="SigningCertURL"):
        verifier(fake_sns).verify(json.dumps(message))
    assert fake_sns.fetched == []


def test_a_certificate_not_issued_to_sns_is_refused(fake_sns):
    key, pem = make_certificate("evil.example")
    fake_sns.served[CERT_URL] = pem
    message = fake_sns.sign(fake_sns.notification("{}"), key=key)
    with pytest.raises(SnsRejected, match="not SNS's"):
        verifier(fake_sns).verify(json.dumps(message))


@pytest.mark.parametrize(
    "body",
    ["", "null", "[]", '{"Type": "Notification"}', '{"Type": "Other"}', "{" * 5000],
)
def test_junk_bodies_are_refused(fake_sns, body):
    with pytest.raises(SnsRejected):
        verifier(fake_sns).verify(body)


def test_missing_or_mistyped_fields_are_refused(fake_sns):
    for field in ("Signature", "SigningCertURL", "TopicArn", "Message"):
        message = fake_sns.notification("{}")
        message[field] = 12
        with pytest.raises(SnsRejected):
            verifier(fake_sns).verify(json.dumps(message))
    message = fake_sns.notification("{}")
    message["SignatureVersion"] = "3"
    with pytest.raises(SnsRejected, match="SignatureVersion"):
        verifier(fake_sns).verify(json.dumps(message))


def test_subscription_confirmation_only_for_a_configured_topic(fake_sns):
    confirmation = fake_sns.subscription_confirmation()
    check = verifier(fake_sns)
    verified = check.verify(json.dumps(confirmation))
    check.confirm_subscription(verified)
    assert fake_sns.fetched[-1].startswith("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")

    foreign = fake_sns.subscription_confirmation(topic="arn:aws:sns:us-east-1:999999999999:other")
    with pytest.raises(SnsRejected, match="topic"):
        check.verify(json.dumps(foreign))

    evil = fake_sns.sign({**confirmation, "SubscribeURL": "https://evil.example/confirm"})
    with pytest.raises(SnsRejected, match="SubscribeURL"):
        check.verify(json.dumps(evil))


def test_is_sns_url():
    assert is_sns_url("https://sns.eu-west-2.amazonaws.com/x.pem")
    assert is_sns_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem")
    assert not is_sns_url("https://sns.amazonaws.com/x.pem")
    assert not is_sns_url("https://sqs.us-east-1.amazonaws.com/x.pem")
