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

There is no switch that turns verification off. Fetching certificates goes
through a callable so tests can serve a certificate they made; production
uses :func:`fetch_https` (no redirects, at most 64 KB).

A post cannot make the service fetch at will: no URL is fetched before the
topic and the URL's shape are checked, every fetch (certificates and
subscription confirmations) runs on the verifier's own small pool of
:data:`FETCH_WORKERS` threads and is given up after :data:`FETCH_TIMEOUT`
seconds in all, so a slow certificate host holds no request for long and
never more than those threads, and concurrent fetches of one URL share one
request. Certificates are cached by URL, at most :data:`CACHE_SIZE` of them
(least recently used first out), each for :data:`CACHE_TTL` at most.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

MAX_AGE = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)
FETCH_TIMEOUT = 3.0
"""Seconds a certificate or confirmation fetch may take, all in all."""
FETCH_WORKERS = 4
"""Threads that fetch for one verifier: the most slow hosts can hold."""
CACHE_SIZE = 32
CACHE_TTL = timedelta(hours=12)
MAX_FETCH_BYTES = 64 * 1024
_MAX_URL = 2048
# The whole netloc: a host alone, so no user info and no port, not even :443.
_SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d{1,2}\.amazonaws\.com(?:\.cn)?")
_CERTIFICATE_PATH = re.compile(r"/[A-Za-z0-9._~/-]*\.pem")
_VISIBLE_ASCII = re.compile(r"[!-~]+")

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


def _sns_parts(url: object) -> SplitResult | None:
    """The parts of an https URL on an SNS regional endpoint with no user
    info, port or fragment, written in visible ASCII; else None."""
    if not isinstance(url, str) or len(url) > _MAX_URL or not _VISIBLE_ASCII.fullmatch(url):
        return None
    if "\\" in url or "#" in url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or _SNS_HOST.fullmatch(parts.netloc) is None:
        return None
    if not parts.path.startswith("/"):
        return None
    return parts


def is_sns_url(url: str) -> bool:
    """True for https URLs on an SNS regional endpoint (a query allowed, as
    in a SubscribeURL), and nothing else: no other host, no user info, port
    or fragment."""
    return _sns_parts(url) is not None


def is_certificate_url(url: str) -> bool:
    """True for the URL of a ``.pem`` file on an SNS regional endpoint, with
    no query either."""
    parts = _sns_parts(url)
    return (
        parts is not None
        and "?" not in url
        and _CERTIFICATE_PATH.fullmatch(parts.path) is not None
        and "/../" not in f"{parts.path}/"
    )


def _opener_without_redirects() -> Any:
    """A urllib opener that turns every redirect into an error."""
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirects)


def fetch_https(url: str, timeout: float = FETCH_TIMEOUT) -> bytes:
    """GET an SNS URL (certificate or subscription confirmation): no
    redirects, at most :data:`MAX_FETCH_BYTES`, and no more than ``timeout``
    seconds for the answer once connected."""
    import urllib.request

    if not is_sns_url(url):
        raise SnsRejected("refusing to fetch a URL that is not an SNS endpoint")
    deadline = time.monotonic() + timeout
    opener = _opener_without_redirects()
    # is_sns_url admits only https on an SNS host.
    request = urllib.request.Request(url, headers={"User-Agent": "publish-newsletter/1"})  # noqa: S310
    with opener.open(request, timeout=timeout) as response:
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete answer within {timeout:g} seconds")
            chunk: bytes = response.read1(8192)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_FETCH_BYTES:
                raise ValueError(f"the answer is larger than {MAX_FETCH_BYTES} bytes")
            chunks.append(chunk)


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
        self._fetch = fetch
        self._now = now
        self.fetch_timeout = fetch_timeout
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self._keys: OrderedDict[str, tuple[Any, datetime]] = OrderedDict()
        self._pending: dict[str, Future[bytes]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def cached_certificates(self) -> int:
        """How many certificates' keys are cached now."""
        with self._lock:
            return len(self._keys)

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
            self._fetch_bounded(message.subscribe_url)
        except FutureTimeout:
            raise TimeoutError(
                f"SubscribeURL gave no answer within {self.fetch_timeout:g} seconds"
            ) from None

    def _fetch_bounded(self, url: str) -> bytes:
        """``self._fetch(url)`` on the verifier's own threads, given up after
        :attr:`fetch_timeout` seconds (:class:`FutureTimeout`); one request
        for any number of concurrent callers of the same URL."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="sns-fetch")
            future = self._pending.get(url)
            new = future is None
            if future is None:
                future = self._pool.submit(self._fetch, url)
                self._pending[url] = future
        if new:
            # Outside the lock: a future already done calls back at once.
            future.add_done_callback(lambda done: self._forget(url, done))
        try:
            return future.result(timeout=self.fetch_timeout)
        except FutureTimeout:
            future.cancel()  # if it is still waiting for a thread, it never starts
            raise

    def _forget(self, url: str, future: Future[bytes]) -> None:
        with self._lock:
            if self._pending.get(url) is future:
                del self._pending[url]

    def _cached_key(self, cert_url: str) -> Any:
        now = self._now()
        with self._lock:
            found = self._keys.get(cert_url)
            if found is None:
                return None
            key, expires = found
            if expires <= now:
                del self._keys[cert_url]
                return None
            self._keys.move_to_end(cert_url)
            return key

    def _cache_key(self, cert_url: str, key: Any, expires: datetime) -> None:
        with self._lock:
            self._keys[cert_url] = (key, expires)
            self._keys.move_to_end(cert_url)
            while len(self._keys) > self.cache_size:
                self._keys.popitem(last=False)

    def _public_key(self, cert_url: str) -> Any:
        key = self._cached_key(cert_url)
        if key is not None:
            return key
        from cryptography import x509

        try:
            pem = self._fetch_bounded(cert_url)
        except SnsRejected:
            raise
        except FutureTimeout:
            raise SnsRejected(
                f"signing certificate could not be fetched within {self.fetch_timeout:g} seconds"
            ) from None
        except Exception:
            raise SnsRejected("signing certificate could not be fetched") from None
        try:
            certificate = x509.load_pem_x509_certificate(pem)
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
        self._cache_key(
            cert_url, key, min(now + self.cache_ttl, certificate.not_valid_after_utc + CLOCK_SKEW)
        )
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
