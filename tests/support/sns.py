"""A signing certificate and key made by the tests, standing in for SNS's.

Messages are signed exactly as SNS signs them (SignatureVersion 1 with SHA1,
2 with SHA256, over the canonical "Key\\nValue\\n" string), so the verifier
under test runs its real code; only the certificate fetch is served locally.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.certs import self_signed

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
