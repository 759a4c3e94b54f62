"""`POST /ses/events` on a real uvicorn server on loopback: SNS notifications
signed with a certificate the tests make (served through the injectable
certificate fetch), and everything an attacker could post instead."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from subscribers import db
from subscribers.mail_template import OutgoingMessage
from subscribers.models import Status
from subscribers.schema import subscriber_events, subscribers, suppressions
from subscribers.store import Store
from subscribers.web import create_app
from tests.support.aws import free_port
from tests.support.ses_samples import notification
from tests.support.sns import TOPIC, FakeSns, make_certificate
from tests.support.web import config, serving

OTHER_TOPIC = "arn:aws:sns:us-east-1:999999999999:someone-else"


@dataclass
class Hook:
    url: str
    store: Store
    sns: FakeSns
    client: httpx.Client

    def post(self, body: bytes | str | dict, **headers: str) -> httpx.Response:
        content = json.dumps(body) if isinstance(body, dict) else body
        return self.client.post(
            f"{self.url}/ses/events",
            content=content,
            headers={"Content-Type": "text/plain; charset=UTF-8", **headers},
        )

    def rows(self) -> dict:
        """Every row of the subscriber tables: what must not change."""
        with self.store.engine.connect() as conn:
            return {
                table.name: sorted(tuple(map(str, row)) for row in conn.execute(select(table)))
                for table in (subscribers, subscriber_events, suppressions)
            }


def _hook(root: Path, fake_sns: FakeSns) -> Iterator[Hook]:
    engine = db.connect(f"sqlite:///{root / 'subscribers.db'}", root)
    sent: list[OutgoingMessage] = []
    port = free_port()
    app = create_app(
        engine,
        config(f"http://127.0.0.1:{port}", sns_topic_arns=(TOPIC,)),
        sent.append,
        mailer=False,
        sns_fetch=fake_sns.fetch,
    )
    store = Store(engine)
    for name in ("ana", "ben", "cleo"):
        store.add(f"{name}@example.com")
    try:
        with serving(app, port) as url, httpx.Client(timeout=30) as client:
            yield Hook(url, store, fake_sns, client)
    finally:
        engine.dispose()


@pytest.fixture
def hook(tmp_path, fake_sns) -> Iterator[Hook]:
    yield from _hook(tmp_path, fake_sns)


def bounce(email: str = "ana@example.com", **options) -> str:
    return json.dumps(notification("bounce-permanent", [email], **options))


def status_of(hook: Hook, email: str) -> Status:
    return hook.store.find(email).status


# ---------------------------------------------------------------------------
# Genuine messages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_genuine_notification_is_applied(hook, version):
    response = hook.post(hook.sns.notification(bounce(), version=version))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
    assert status_of(hook, "ana@example.com") == Status.BOUNCED
    assert status_of(hook, "ben@example.com") == Status.ACTIVE


def test_a_replayed_message_is_refused_and_changes_nothing(hook):
    message = hook.sns.notification(
        json.dumps(notification("bounce-transient", ["ana@example.com"])))
    assert hook.post(message).status_code == 200
    before = hook.rows()
    for _ in range(3):
        assert hook.post(message).status_code == 403
    assert hook.rows() == before


def test_the_same_feedback_in_a_new_sns_message_is_recorded_once(hook):
    body = json.dumps(notification("bounce-transient", ["ana@example.com"], feedback_id="fb-1"))
    assert hook.post(hook.sns.notification(body)).status_code == 200
    before = hook.rows()
    assert hook.post(hook.sns.notification(body)).status_code == 200  # another MessageId
    assert hook.rows() == before


def test_a_notification_about_a_stranger_changes_nothing(hook):
    before = hook.rows()
    response = hook.post(hook.sns.notification(bounce("stranger@example.com")))
    assert response.status_code == 200
    assert hook.rows() == before


def test_a_genuine_message_that_is_not_an_ses_notification_is_a_400(hook):
    before = hook.rows()
    for body in ("not json", "[]", json.dumps({"notificationType": "Bounce"})):
        response = hook.post(hook.sns.notification(body))
        assert response.status_code == 400, body
    assert hook.rows() == before


def test_subscription_is_confirmed_only_for_a_configured_topic(hook):
    confirmation = hook.sns.subscription_confirmation()
    assert hook.post(confirmation).status_code == 200
    assert confirmation["SubscribeURL"] in hook.sns.fetched

    foreign = hook.sns.subscription_confirmation(topic=OTHER_TOPIC)
    assert hook.post(foreign).status_code == 403
    assert foreign["SubscribeURL"] not in hook.sns.fetched


# ---------------------------------------------------------------------------
# Forged, altered, stale, foreign
# ---------------------------------------------------------------------------


def forged(sns: FakeSns) -> dict:
    other_key, _ = make_certificate()
    return sns.sign(sns.notification(bounce()), key=other_key)


def altered(sns: FakeSns) -> dict:
    message = sns.notification(bounce())
    message["Message"] = bounce("ben@example.com")
    return message


def stale(sns: FakeSns) -> dict:
    return sns.notification(bounce(), age=dt.timedelta(hours=1, minutes=1))


def foreign(sns: FakeSns) -> dict:
    return sns.notification(bounce(), topic=OTHER_TOPIC)


def elsewhere(sns: FakeSns) -> dict:
    message = sns.notification(bounce())
    message["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem"
    return sns.sign(message)


def downgraded(sns: FakeSns) -> dict:
    message = sns.notification(bounce(), version="2")
    message["SignatureVersion"] = "1"
    return message


@pytest.mark.parametrize("make", [forged, altered, stale, foreign, elsewhere, downgraded])
def test_a_message_sns_did_not_sign_for_us_is_refused(hook, make):
    before = hook.rows()
    response = hook.post(make(hook.sns))
    assert response.status_code == 403
    assert response.json() == {"status": "forbidden"}
    assert hook.rows() == before


# ---------------------------------------------------------------------------
# Junk
# ---------------------------------------------------------------------------


def genuine(sns: FakeSns) -> dict:
    return sns.notification(bounce())


JUNK = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b"null",
    b'"a string"',
    b"[" * 50_000,
    json.dumps({"Type": "Notification"}).encode(),
    json.dumps({"Type": "Nonsense", "Message": "x"}).encode(),
]


def mangled(change):
    def make(sns: FakeSns) -> dict:
        message = genuine(sns)
        change(message)
        return message

    return make


MANGLED = [
    mangled(lambda m: m.pop("Signature")),
    mangled(lambda m: m.pop("TopicArn")),
    mangled(lambda m: m.update(Message={"notificationType": "Bounce"})),
    mangled(lambda m: m.update(Timestamp=12345)),
    mangled(lambda m: m.update(Timestamp="yesterday")),
    mangled(lambda m: m.update(Signature="!!not base64!!")),
    mangled(lambda m: m.update(SignatureVersion=1)),
    mangled(lambda m: m.update(SignatureVersion="3")),
    mangled(lambda m: m.update(SigningCertURL=None)),
    mangled(lambda m: m.update(SigningCertURL="http://sns.us-east-1.amazonaws.com/c.pem")),
    mangled(lambda m: m.update(TopicArn=[TOPIC])),
    mangled(lambda m: m.update(Type=["Notification"])),
]


@pytest.mark.parametrize("body", JUNK, ids=range(len(JUNK)))
def test_junk_is_refused_without_a_server_error(hook, body):
    before = hook.rows()
    response = hook.post(body)
    assert response.status_code == 403
    assert hook.rows() == before


@pytest.mark.parametrize("make", MANGLED, ids=range(len(MANGLED)))
def test_missing_keys_and_wrong_types_are_refused(hook, make):
    before = hook.rows()
    response = hook.post(make(hook.sns))
    assert response.status_code == 403
    assert hook.rows() == before


def test_a_huge_body_is_refused_before_it_is_read(hook):
    before = hook.rows()
    message = genuine(hook.sns)
    message["Padding"] = "x" * (400 * 1024)
    assert hook.post(message).status_code == 413
    streamed = hook.client.post(
        f"{hook.url}/ses/events", content=iter([b"{" + b" " * 65536] * 10)
    )
    assert streamed.status_code == 413
    assert hook.rows() == before


def test_a_large_genuine_notification_fits(hook):
    recipients = ["ana@example.com", "ben@example.com"] + [
        f"someone{n}@example.com" for n in range(98)]
    body = notification("delivery", recipients)
    body["mail"]["headers"] = [{"name": "X-Filler", "value": "x" * 900}] * 250
    message = hook.sns.notification(json.dumps(body))
    assert len(json.dumps(message)) > 200_000  # near SNS's 256 KB
    assert hook.post(message).status_code == 200


def test_other_methods_are_not_allowed(hook):
    assert hook.client.get(f"{hook.url}/ses/events").status_code == 405


def test_without_configured_topics_everything_is_refused(tmp_path, fake_sns):
    engine = db.connect(f"sqlite:///{tmp_path / 'subscribers.db'}", tmp_path)
    port = free_port()
    app = create_app(engine, config(f"http://127.0.0.1:{port}"), lambda m: None,
                     mailer=False, sns_fetch=fake_sns.fetch)
    try:
        with serving(app, port) as url:
            response = httpx.post(f"{url}/ses/events",
                                  content=json.dumps(fake_sns.notification(bounce())))
            assert response.status_code == 403
    finally:
        engine.dispose()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_sns_keys = st.sampled_from(
    ["Type", "Message", "MessageId", "TopicArn", "Timestamp", "Signature",
     "SignatureVersion", "SigningCertURL", "Subject", "SubscribeURL", "Token"]
)


@pytest.fixture(scope="module")
def fuzz_hook(tmp_path_factory) -> Iterator[Hook]:
    from tests.support.sns import FakeSns

    key, pem = make_certificate()
    yield from _hook(tmp_path_factory.mktemp("fuzz"), FakeSns(key=key, pem=pem))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(_sns_keys, _json | st.sampled_from(
        ["Notification", "SubscriptionConfirmation", TOPIC, "1", "2",
         "https://sns.us-east-1.amazonaws.com/x.pem"])),
    raw=st.binary(max_size=200),
    use_raw=st.booleans(),
)
def test_fuzzed_posts_never_get_a_server_error(fuzz_hook, fields, raw, use_raw):
    before = fuzz_hook.rows()
    response = fuzz_hook.post(raw if use_raw else json.dumps(fields))
    assert response.status_code < 500
    assert response.status_code in (400, 403)
    assert fuzz_hook.rows() == before


def test_publish_serve_configures_the_endpoint_from_settings(newsletter, monkeypatch):
    from pipeline.cli.serve import _web_config
    from pipeline.config import load_settings

    monkeypatch.setenv("NEWSLETTER_SNS_TOPIC_ARNS", f"{TOPIC}, {OTHER_TOPIC}")
    monkeypatch.setenv("NEWSLETTER_TRANSIENT_BOUNCE_LIMIT", "5")
    web = _web_config(load_settings(newsletter), "secret")
    assert web.sns_topic_arns == (TOPIC, OTHER_TOPIC)
    assert web.transient_bounce_limit == 5


# ---------------------------------------------------------------------------
# Slow certificate hosts
# ---------------------------------------------------------------------------


def test_slow_certificate_hosts_never_take_the_pages_threads(tmp_path, fake_sns, cert_server):
    """Far more posts than the server has threads, each naming a certificate
    its host is slow to serve: the pages still answer, and no more than the
    verifier's few fetches run at once."""
    from subscribers import sns

    engine = db.connect(f"sqlite:///{tmp_path / 'subscribers.db'}", tmp_path)
    port = free_port()
    app = create_app(engine, config(f"http://127.0.0.1:{port}", sns_topic_arns=(TOPIC,)),
                     lambda m: None, mailer=False, sns_fetch=cert_server.fetch)
    posts = [
        json.dumps(fake_sns.sign({
            **fake_sns.notification(bounce("stranger@example.com")),
            "SigningCertURL": f"https://sns.us-east-1.amazonaws.com/slow-{i}.pem",
        }))
        for i in range(48)  # starlette's pool has 40 threads
    ]
    cert_server.hold = True
    try:
        with serving(app, port) as url, httpx.Client(timeout=30) as client, \
                ThreadPoolExecutor(len(posts)) as clients:
            answers = [
                clients.submit(client.post, f"{url}/ses/events", content=body) for body in posts
            ]
            try:
                assert cert_server.wait_for_requests(4, timeout=10)  # fetches are waiting
                page = httpx.get(f"{url}/subscribe", timeout=2)
                assert page.status_code == 200
                assert not cert_server.wait_for_requests(sns.FETCH_WORKERS + 1, timeout=0.5)
            finally:
                cert_server.release()
            statuses = {answer.result(timeout=60).status_code for answer in answers}
    finally:
        engine.dispose()
    assert statuses <= {200, 403}  # 403: gave up on the certificate after the timeout
