"""What the web service fetches from SNS, and how: only SNS URLs, on a few
threads of its own, each fetch bounded in time; signing certificates' keys cached.

    is_sns_url(url)            https on sns.<region>.amazonaws.com, nothing else
    is_certificate_url(url)    ... naming a .pem file, with no query either
    fetch_https(url)           GET with no redirects, at most 64 KB
    SnsFetcher.fetch(url)      on the fetcher's own threads, given up after
                               FETCH_TIMEOUT seconds; one request for any
                               number of concurrent callers of one URL
    SnsFetcher.public_key(url) the certificate fetched, checked (issued to
                               SNS, valid now) and its key cached

A post cannot make the service fetch at will: the verifier
(:mod:`subscribers.sns`) checks the topic and the URL's shape first, and
every fetch (certificates and subscription confirmations) runs on the
fetcher's small pool of :data:`FETCH_WORKERS` threads and is given up after
:data:`FETCH_TIMEOUT` seconds in all, so a slow certificate host holds no
request for long and never more than those threads. Certificates are
cached by URL, at most :data:`CACHE_SIZE` of them (least recently used
first out), each for :data:`CACHE_TTL` at most. The fetching itself goes
through a callable so tests can serve a certificate they made; production
uses :func:`fetch_https`.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

CLOCK_SKEW = timedelta(minutes=5)
"""How far the sender's clock (or a certificate's) may be from ours."""
FETCH_TIMEOUT = 3.0
"""Seconds a certificate or confirmation fetch may take, all in all."""
FETCH_WORKERS = 4
"""Threads a fetcher (one per verifier) fetches on: the most slow hosts can hold."""
CACHE_SIZE = 32
CACHE_TTL = timedelta(hours=12)
MAX_FETCH_BYTES = 64 * 1024
_MAX_URL = 2048
# The whole netloc: a host alone, so no user info and no port, not even :443.
_SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d{1,2}\.amazonaws\.com(?:\.cn)?")
_CERTIFICATE_PATH = re.compile(r"/[A-Za-z0-9._~/-]*\.pem")
_VISIBLE_ASCII = re.compile(r"[!-~]+")

Fetch = Callable[[str], bytes]


class SnsRejected(Exception):
    """The message is not a genuine, fresh SNS message for a configured topic.

    An internal signal, outside the tree of :mod:`subscribers.errors`: it
    never reaches a person as an error. ``/ses/events`` answers 403 and logs
    the reason for the operator."""


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


class SnsFetcher:
    """Fetches SNS URLs within bounds and keeps the signing certificates' keys."""

    def __init__(
        self,
        fetch: Fetch,
        now: Callable[[], datetime],
        *,
        fetch_timeout: float = FETCH_TIMEOUT,
        cache_size: int = CACHE_SIZE,
        cache_ttl: timedelta = CACHE_TTL,
    ) -> None:
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

    def fetch(self, url: str) -> bytes:
        """What the ``fetch`` callable answers for ``url``, fetched on the
        fetcher's own threads and given up after :attr:`fetch_timeout`
        seconds (:class:`FutureTimeout`); one request for any number of
        concurrent callers of the same URL."""
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

    def public_key(self, cert_url: str) -> Any:
        """The key of the signing certificate at ``cert_url``: from the cache,
        or fetched and checked (issued to SNS, valid now); else
        :class:`SnsRejected` saying why not."""
        key = self._cached_key(cert_url)
        if key is not None:
            return key
        from cryptography import x509

        try:
            pem = self.fetch(cert_url)
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
