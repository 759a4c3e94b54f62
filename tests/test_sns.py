"""SNS signature checks: genuine messages pass; forged, altered, stale,
foreign and oddly-certified ones are refused."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest

from subscribers import sns
from subscribers.sns import SnsRejected, SnsVerifier, fetch_https, is_sns_url
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
    assert is_sns_url("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=1")
    assert not is_sns_url("https://sns.amazonaws.com/x.pem")
    assert not is_sns_url("https://sqs.us-east-1.amazonaws.com/x.pem")
    assert not is_sns_url("https://sns.us-east-1.amazonaws.com:443/x.pem")
    assert not is_sns_url("https://sns.us-east-1.amazonaws.com/x.pem#f")
    assert not is_sns_url("https://sns.us-east-1.amazonaws.com/x.pem\n")
    assert not is_sns_url("https://sns.us-east-1.amazonaws.com:99999/x.pem")  # no ValueError


# ---------------------------------------------------------------------------
# Fetching: never at will, never for long, never too much kept
# ---------------------------------------------------------------------------


def signed_with(fake_sns, cert_url: str, **options) -> str:
    """A genuine notification naming ``cert_url`` as its certificate."""
    message = fake_sns.notification("{}", **options)
    return json.dumps(fake_sns.sign({**message, "SigningCertURL": cert_url}))


def test_the_certificate_is_fetched_from_the_certificate_host(fake_sns, cert_server):
    check = SnsVerifier((TOPIC,), fetch=cert_server.fetch)
    check.verify(signed_with(fake_sns, CERT_URL))
    assert cert_server.paths == ["/SimpleNotificationService-test.pem"]


@pytest.mark.parametrize(
    "url",
    [
        CERT_URL + "?x=1",
        CERT_URL + "?",
        CERT_URL + "#f",
        CERT_URL.replace("https://", "https://user@"),
        CERT_URL.replace("https://", "https://user:password@"),
        CERT_URL.replace(".com/", ".com:8443/"),
        CERT_URL.replace(".com/", ".com:443/"),
        CERT_URL.replace(".com/", ".com:99999/"),
        CERT_URL.replace("https://", "http://"),
        CERT_URL.replace(".com/", ".com/../"),
        CERT_URL.replace(".com/", ".com/%2e%2e/"),
        CERT_URL + "\t",
    ],
)
def test_certificate_urls_with_query_fragment_userinfo_or_port_are_never_fetched(
    fake_sns, cert_server, url
):
    fetched: list[str] = []

    def fetch(target: str) -> bytes:
        fetched.append(target)
        return cert_server.fetch(target)

    with pytest.raises(SnsRejected, match="SigningCertURL is not an SNS certificate URL"):
        SnsVerifier((TOPIC,), fetch=fetch).verify(signed_with(fake_sns, url))
    assert fetched == []
    assert cert_server.paths == []


def test_fetch_https_refuses_anything_but_sns_before_connecting(cert_server):
    for url in (f"{cert_server.url}/x.pem", cert_server.url.replace("http:", "https:") + "/x.pem"):
        with pytest.raises(SnsRejected, match="not an SNS endpoint"):
            fetch_https(url)
    assert cert_server.paths == []


def test_a_slow_certificate_host_fails_the_verification_within_the_timeout(
    fake_sns, cert_server
):
    assert SnsVerifier((TOPIC,)).fetch_timeout == sns.FETCH_TIMEOUT <= 5
    cert_server.hold = True
    check = SnsVerifier((TOPIC,), fetch=cert_server.fetch, fetch_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SnsRejected, match=r"could not be fetched within 0\.5 seconds"):
        check.verify(signed_with(fake_sns, CERT_URL))
    assert time.monotonic() - started < 2
    assert cert_server.wait_for_requests(1, timeout=5)
    cert_server.release()
    check.verify(signed_with(fake_sns, CERT_URL))  # the host answers again: all is well


def test_slow_hosts_hold_only_the_verifiers_few_threads(fake_sns, cert_server):
    """However many posts name slow certificates, at most FETCH_WORKERS
    fetches run at once, and posts naming the same certificate share one."""
    cert_server.hold = True
    check = SnsVerifier((TOPIC,), fetch=cert_server.fetch, fetch_timeout=10)
    urls = [f"https://sns.us-east-1.amazonaws.com/slow-{i}.pem" for i in range(8)] * 2
    outcomes: list[str] = []

    def post(url: str) -> None:
        try:
            check.verify(signed_with(fake_sns, url))
            outcomes.append("ok")
        except SnsRejected as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=post, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    try:
        assert cert_server.wait_for_requests(sns.FETCH_WORKERS, timeout=5)
        assert not cert_server.wait_for_requests(sns.FETCH_WORKERS + 1, timeout=0.5)
    finally:
        cert_server.release()
        for thread in threads:
            thread.join(timeout=15)
    assert outcomes == ["ok"] * len(urls)
    assert sorted(cert_server.paths) == sorted({f"/slow-{i}.pem" for i in range(8)})


def test_the_certificate_cache_never_grows_past_its_bound(fake_sns, cert_server):
    check = SnsVerifier((TOPIC,), fetch=cert_server.fetch)
    urls = [f"https://sns.us-east-1.amazonaws.com/cert-{i}.pem" for i in range(sns.CACHE_SIZE + 8)]
    for url in urls:
        check.verify(signed_with(fake_sns, url))
        assert check.cached_certificates <= sns.CACHE_SIZE
    assert check.cached_certificates == sns.CACHE_SIZE == 32
    fetches = len(cert_server.paths)
    check.verify(signed_with(fake_sns, urls[-1]))  # recently used: still cached
    assert len(cert_server.paths) == fetches
    check.verify(signed_with(fake_sns, urls[0]))  # least recently used: gone
    assert len(cert_server.paths) == fetches + 1
    assert check.cached_certificates == sns.CACHE_SIZE


def test_a_cached_certificate_expires(fake_sns, cert_server):
    clock = [dt.datetime.now(dt.UTC)]
    check = SnsVerifier((TOPIC,), fetch=cert_server.fetch, now=lambda: clock[0])
    check.verify(signed_with(fake_sns, CERT_URL))
    check.verify(signed_with(fake_sns, CERT_URL))
    assert len(cert_server.paths) == 1
    later = sns.CACHE_TTL + dt.timedelta(minutes=1)
    clock[0] += later
    check.verify(signed_with(fake_sns, CERT_URL, age=-later))
    assert len(cert_server.paths) == 2
