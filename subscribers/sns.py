"""Verifying Amazon SNS messages posted to the web service.

Anyone can POST to ``/ses/events``; only messages that SNS signed, for a
topic we subscribed to, recently, are believed. :class:`SnsVerifier` checks,
in order:

1. the body is a JSON object of a known ``Type`` with the fields it needs;
2. ``TopicArn`` is one of the configured topics;
3. ``SigningCertURL`` is https on ``sns.<region>.amazonaws.com`` (no other
   host, port, user info or query), and the certificate it names, fetched
   once and cached, was issued to that host's SNS;
4. ``Signature`` verifies over the canonical string, with SHA1
   (``SignatureVersion`` 1) or SHA256 (2);
5. ``Timestamp`` is no older than an hour (and not from the future).

There is no switch that turns verification off. Fetching certificates goes
through a callable so tests can serve a certificate they made; production
uses :func:`fetch_https`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

MAX_AGE = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)
_SNS_HOST = re.compile(r"^sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?$")

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

Fetch = Callable[[str], bytes]


class SnsRejected(Exception):
    """The message is not a genuine, fresh SNS message for a configured topic."""


@dataclass(frozen=True)
class SnsMessage:
    type: str
    topic_arn: str
    message: str
    message_id: str
    timestamp: datetime
    subscribe_url: str = ""


def is_sns_url(url: str) -> bool:
    """True for https URLs on an SNS regional endpoint, and nothing else."""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.hostname is not None
        and _SNS_HOST.match(parts.hostname) is not None
        and parts.port in (None, 443)
        and not parts.username
        and not parts.password
    )


def fetch_https(url: str, timeout: float = 10.0) -> bytes:
    """GET an SNS URL (certificate or subscription confirmation)."""
    import urllib.request

    if not is_sns_url(url):
        raise SnsRejected("refusing to fetch a URL that is not an SNS endpoint")
    # is_sns_url admits only https on an SNS host.
    request = urllib.request.Request(url, headers={"User-Agent": "publish-newsletter/1"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        data: bytes = response.read(64 * 1024)
        return data


class SnsVerifier:
    """Checks SNS messages against the configured topics."""

    def __init__(
        self,
        topic_arns: Iterable[str],
        fetch: Fetch = fetch_https,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.topic_arns = frozenset(topic_arns)
        self._fetch = fetch
        self._now = now
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

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
        if not is_sns_url(cert_url) or not urlsplit(cert_url).path.endswith(".pem"):
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
        self._fetch(message.subscribe_url)

    def _public_key(self, cert_url: str) -> Any:
        with self._lock:
            key = self._keys.get(cert_url)
        if key is not None:
            return key
        from cryptography import x509

        try:
            certificate = x509.load_pem_x509_certificate(self._fetch(cert_url))
        except SnsRejected:
            raise
        except Exception:
            raise SnsRejected("signing certificate could not be loaded") from None
        host = urlsplit(cert_url).hostname or ""
        if not _issued_for(certificate, host):
            raise SnsRejected("signing certificate is not SNS's")
        now = self._now()
        if not (
            certificate.not_valid_before_utc - CLOCK_SKEW
            <= now
            <= certificate.not_valid_after_utc + CLOCK_SKEW
        ):
            raise SnsRejected("signing certificate is not valid now")
        key = certificate.public_key()
        with self._lock:
            self._keys[cert_url] = key
        return key

    def _check_signature(self, cert_url: str, version: str, data: bytes, signature: bytes) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        key = self._public_key(cert_url)
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


def _issued_for(certificate: Any, host: str) -> bool:
    """The certificate names the SNS service (sns.amazonaws.com or the regional host)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: list[str] = [
        str(attr.value) for attr in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names.extend(extension.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    allowed = {host, "sns.amazonaws.com", host.replace(".amazonaws.com.cn", ".amazonaws.com")}
    return any(name in allowed for name in names)
