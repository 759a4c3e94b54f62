"""A signing certificate and key made by the tests, standing in for SNS's.

Messages are signed exactly as SNS signs them (SignatureVersion 1 with SHA1,
2 with SHA256, over the canonical "Key\\nValue\\n" string), so the verifier
under test runs its real code; only the certificate fetch is served locally.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.certs import self_signed

HOLD_LIMIT = 20.0
"""Seconds a held certificate answer waits at most for its release."""

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}


def make_certificate(common_name: str = "sns.amazonaws.com"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = self_signed(key, common_name)
    return key, certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class FakeSns:
    key: Any
    pem: bytes
    fetched: list[str] = field(default_factory=list)
    served: dict[str, bytes] = field(default_factory=dict)

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.served.get(url, self.pem)

    def sign(self, message: dict, version: str = "1", key=None) -> dict:
        message = dict(message)
        message["SignatureVersion"] = version
        message.setdefault("SigningCertURL", CERT_URL)
        canonical = "".join(
            f"{name}\n{message[name]}\n" for name in FIELDS[message["Type"]] if name in message
        )
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(canonical.encode(), padding.PKCS1v15(), algorithm)
        message["Signature"] = base64.b64encode(signature).decode()
        return message

    def notification(self, body: str, *, topic: str = TOPIC, age: dt.timedelta = dt.timedelta(0),
                     version: str = "1") -> dict:
        stamp = dt.datetime.now(dt.UTC) - age
        return self.sign(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": topic,
                "Message": body,
                "Timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            },
            version,
        )

    def subscription_confirmation(self, topic: str = TOPIC) -> dict:
        return self.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": "2336412f37fb687f5d51e6e2425c464de12884c4",
                "TopicArn": topic,
                "Message": f"You have chosen to subscribe to the topic {topic}.",
                "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                f"&TopicArn={topic}&Token=2336412f37fb687f5d51e6e2425c464de12884c4",
                "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
        )


@pytest.fixture(scope="session")
def _sns_key():
    return make_certificate()


@pytest.fixture
def fake_sns(_sns_key) -> FakeSns:
    key, pem = _sns_key
    return FakeSns(key=key, pem=pem)


class CertServer(http.server.ThreadingHTTPServer):
    """SNS's certificate host, played on loopback over plain HTTP.

    :meth:`fetch` is the verifier's fetch: it sends an SNS URL's path here.
    Every request is recorded; with :attr:`hold` set, answers wait until
    :meth:`release` (or :data:`HOLD_LIMIT`), as a slow host's would.
    """

    daemon_threads = True

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.paths: list[str] = []
        self.hold = False
        self.released = threading.Event()
        self.arrived = threading.Condition()
        super().__init__(("127.0.0.1", 0), _CertHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fetch(self, url: str) -> bytes:
        parts = urlsplit(url)
        local = f"{self.url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        with urllib.request.urlopen(local, timeout=HOLD_LIMIT + 10) as response:
            data: bytes = response.read()
            return data

    def release(self) -> None:
        self.released.set()

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """True once ``count`` requests have arrived, False after ``timeout``."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.paths) >= count, timeout)


class _CertHandler(http.server.BaseHTTPRequestHandler):
    server: CertServer

    def do_GET(self) -> None:
        with self.server.arrived:
            self.server.paths.append(self.path)
            self.server.arrived.notify_all()
        if self.server.hold:
            self.server.released.wait(HOLD_LIMIT)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-pem-file")
        self.send_header("Content-Length", str(len(self.server.pem)))
        self.end_headers()
        self.wfile.write(self.server.pem)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def cert_server(_sns_key) -> Iterator[CertServer]:
    server = CertServer(_sns_key[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
