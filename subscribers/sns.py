"""Verifying Amazon SNS messages posted to the web service.

Anyone can POST to ``/ses/events``; only messages that SNS signed, for a
topic we subscribed to, recently, are believed. :class:`SnsVerifier` checks,
in order:

1. the body is a JSON object of a known ``Type`` with the fields it needs;
2. ``TopicArn`` is one of the configured topics;
3. ``SigningCertURL`` is https on ``sns.<region>.amazonaws.com`` (no other
   host, port, user info, query or fragment) naming a ``.pem`` file, and the
   certificate it names was issued to that host's SNS;
4. ``Signature`` verifies over the canonical string, with SHA1
   (``SignatureVersion`` 1) or SHA256 (2);
5. ``Timestamp`` is no older than an hour (and not from the future).

Each step's failure is a :class:`SnsRejected` naming it. There is no switch
that turns verification off. What is fetched from SNS (the certificates,
the subscription confirmations), and how it is bounded and cached, is in
:mod:`subscribers.sns_fetch`.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from subscribers.sns_fetch import (
    CACHE_SIZE,
    CACHE_TTL,
    CLOCK_SKEW,
    FETCH_TIMEOUT,
    FETCH_WORKERS,
    Fetch,
    SnsFetcher,
    SnsRejected,
    fetch_https,
    is_certificate_url,
    is_sns_url,
)

MAX_AGE = timedelta(hours=1)
"""How old a message (its ``Timestamp``) may be to be believed."""

_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}


@dataclass(frozen=True)
class SnsMessage:
    type: str
    topic_arn: str
    message: str
    message_id: str
    timestamp: datetime
    subscribe_url: str = ""


class SnsVerifier:
    """Checks SNS messages against the configured topics."""

    def __init__(
        self,
        topic_arns: Iterable[str],
        fetch: Fetch = fetch_https,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        fetch_timeout: float = FETCH_TIMEOUT,
        cache_size: int = CACHE_SIZE,
        cache_ttl: timedelta = CACHE_TTL,
    ) -> None:
        self.topic_arns = frozenset(topic_arns)
        self._now = now
        self._fetcher = SnsFetcher(
            fetch, now, fetch_timeout=fetch_timeout, cache_size=cache_size, cache_ttl=cache_ttl
        )

    @property
    def fetch_timeout(self) -> float:
        """Seconds a certificate or confirmation fetch may take, all in all."""
        return self._fetcher.fetch_timeout

    @property
    def cached_certificates(self) -> int:
        """How many certificates' keys are cached now."""
        return self._fetcher.cached_certificates

    def verify(self, body: bytes | str) -> SnsMessage:
        """The verified message, or :class:`SnsRejected` saying why not."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise SnsRejected("body is not JSON") from None
        if not isinstance(data, dict):
            raise SnsRejected("body is not a JSON object")
        kind = data.get("Type")
        if not isinstance(kind, str) or kind not in _SIGNED_FIELDS:
            raise SnsRejected("unknown message type")
        fields = _SIGNED_FIELDS[kind]
        for name in (*fields, "Signature", "SignatureVersion", "SigningCertURL"):
            if name == "Subject" and name not in data:
                continue
            if not isinstance(data.get(name), str):
                raise SnsRejected(f"{name} is missing or not text")

        topic = data["TopicArn"]
        if topic not in self.topic_arns:
            raise SnsRejected("topic is not configured")

        version = data["SignatureVersion"]
        if version not in ("1", "2"):
            raise SnsRejected("unsupported SignatureVersion")
        cert_url = data["SigningCertURL"]
        if not is_certificate_url(cert_url):
            raise SnsRejected("SigningCertURL is not an SNS certificate URL")

        canonical = "".join(f"{name}\n{data[name]}\n" for name in fields if name in data)
        try:
            signature = base64.b64decode(data["Signature"], validate=True)
        except ValueError:
            raise SnsRejected("Signature is not base64") from None
        self._check_signature(cert_url, version, canonical.encode("utf-8"), signature)

        try:
            timestamp = datetime.fromisoformat(data["Timestamp"].replace("Z", "+00:00"))
        except ValueError:
            raise SnsRejected("Timestamp is not a date-time") from None
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        now = self._now()
        if timestamp < now - MAX_AGE:
            raise SnsRejected("message is older than an hour")
        if timestamp > now + CLOCK_SKEW:
            raise SnsRejected("message is from the future")

        subscribe_url = data.get("SubscribeURL", "")
        if kind != "Notification" and not is_sns_url(subscribe_url):
            raise SnsRejected("SubscribeURL is not an SNS URL")
        return SnsMessage(
            type=str(kind),
            topic_arn=topic,
            message=data["Message"],
            message_id=data["MessageId"],
            timestamp=timestamp,
            subscribe_url=subscribe_url,
        )

    def confirm_subscription(self, message: SnsMessage) -> None:
        """Visit SubscribeURL for a verified SubscriptionConfirmation."""
        if message.type != "SubscriptionConfirmation" or message.topic_arn not in self.topic_arns:
            raise SnsRejected("not a subscription confirmation for a configured topic")
        if not is_sns_url(message.subscribe_url):
            raise SnsRejected("SubscribeURL is not an SNS URL")
        try:
            self._fetcher.fetch(message.subscribe_url)
        except FutureTimeout:
            raise TimeoutError(
                f"SubscribeURL gave no answer within {self.fetch_timeout:g} seconds"
            ) from None

    def _check_signature(self, cert_url: str, version: str, data: bytes, signature: bytes) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        key = self._fetcher.public_key(cert_url)
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected("signing certificate does not hold an RSA key")
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1
        try:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise SnsRejected("signature does not match") from None


class SeenMessages:
    """The SNS MessageIds handled in the last hour, to refuse a replay.

    A message older than :data:`MAX_AGE` is refused as stale anyway, so an
    id need only be kept that long. At most ``limit`` ids are kept (the
    oldest go first); behind that, and across processes, recording each
    event under SES's own feedback id keeps a replay harmless.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._expiry: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def __contains__(self, message_id: object) -> bool:
        with self._lock:
            return message_id in self._expiry

    def add(self, message: SnsMessage) -> None:
        expires = message.timestamp + MAX_AGE + CLOCK_SKEW
        with self._lock:
            self._expiry.pop(message.message_id, None)
            self._expiry[message.message_id] = expires
            if len(self._expiry) > self.limit:
                now = datetime.now(UTC)
                for key in [k for k, until in self._expiry.items() if until < now]:
                    del self._expiry[key]
                while len(self._expiry) > self.limit:
                    del self._expiry[next(iter(self._expiry))]


__all__ = [
    "CACHE_SIZE",
    "CACHE_TTL",
    "FETCH_TIMEOUT",
    "FETCH_WORKERS",
    "MAX_AGE",
    "Fetch",
    "SeenMessages",
    "SnsMessage",
    "SnsRejected",
    "SnsVerifier",
    "fetch_https",
    "is_certificate_url",
    "is_sns_url",
]
