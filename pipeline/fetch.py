"""Fetching a page the editor named, from the public web and nowhere else.

:func:`fetch_public` GETs an http(s) URL for ``publish draft --from-feed``
(:func:`pipeline.blogfeed.read_blog_feed` fetches the blog's feed with it).
What the server answers ends up in a draft, so a server must not be able to
point the fetch at what only this machine can reach (a cloud's metadata
service, a router's admin page, a database on loopback):

* http and https only, on every hop;
* every address a hop's host resolves to (IPv4 and IPv6, an IPv4 address
  inside an IPv6 one too) must be on the public web: not loopback,
  link-local, private, shared, multicast, reserved or unspecified; and the
  connection goes to those checked addresses, with no second lookup;
* unless the URL typed is itself on such an address (a blog on the
  intranet, a test server on 127.0.0.1): then it is fetched, and its
  redirects may only stay on that same host and port;
* at most :data:`MAX_REDIRECTS` redirects;
* at most ``max_bytes`` of body, read in chunks, and
* ``timeout`` seconds for everything, look-ups and redirects included.

No proxy is used: a proxy would look the names up itself, past the checks.
How hosts are looked up and connected to is a :class:`Network`, so tests can
play a public host on loopback. Anything refused or failed is a
:class:`FetchError` whose message says why in one line.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

from pipeline.errors import FeedError

MAX_REDIRECTS = 5
MAX_BYTES = 5 * 1024 * 1024
_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")

Resolve = Callable[[str], Sequence[str]]
"""A host name to its addresses, as text."""
Connect = Callable[[str, int, float], socket.socket]
"""An address, a port and a timeout in seconds to a connected socket."""


class FetchError(FeedError):
    """A URL that was refused or could not be fetched; the message says why
    (the caller, which knows what the URL was for, puts it in front)."""


def system_resolve(host: str) -> list[str]:
    """Every address the system's resolver gives for ``host``."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def connect_tcp(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


@dataclass(frozen=True)
class Network:
    """How hosts are looked up and connected to."""

    resolve: Resolve = system_resolve
    connect: Connect = connect_tcp


@dataclass(frozen=True)
class Fetched:
    url: str
    """Where the body came from, after any redirects."""
    body: bytes
    content_type: str = ""


def address_problem(address: str) -> str:
    """What keeps ``address`` off the public web (``a loopback address``), or ""."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None and (problem := address_problem(str(inner))):
            return f"{problem} inside an IPv6 address"
    for kind, found in (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a shared (carrier-grade NAT)", ip.version == 4 and ip in _SHARED),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
        ("a non-public", not ip.is_global),
    ):
        if found:
            return f"{kind} address"
    return ""


def fetch_public(
    url: str,
    *,
    timeout: float,
    max_bytes: int = MAX_BYTES,
    headers: dict[str, str] | None = None,
    network: Network | None = None,
) -> Fetched:
    """GET ``url`` under the rules above; :class:`FetchError` if refused or failed."""
    net = network or Network()
    clock = _Clock(timeout)
    typed = target = _Target.parse(url)
    addresses = _look_up(target.host, net.resolve, clock)
    # The editor typed a URL on a local address: trust it, and that host only.
    local = any(address_problem(address) for address in addresses)
    for redirects in range(MAX_REDIRECTS + 1):
        status, reason, location, content_type, body = _get(
            target, addresses, headers or {}, net.connect, clock, max_bytes
        )
        if status not in _REDIRECTS:
            if not 200 <= status < 300:
                raise FetchError(f"the server answered {status} {reason}".rstrip())
            return Fetched(target.url, body, content_type)
        if not location:
            raise FetchError(f"the server answered {status} {reason} without a Location")
        following = urljoin(target.url, location.strip())
        if redirects == MAX_REDIRECTS:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects (the last to {following})")
        try:
            target = _Target.parse(following)
        except FetchError as exc:
            raise FetchError(f"redirected to {following}: {exc}") from None
        if local and (target.host, target.port) != (typed.host, typed.port):
            raise FetchError(
                f"redirected to {following}: a URL on a local address may only redirect "
                f"within its own host ({typed.netloc})"
            )
        addresses = _look_up(target.host, net.resolve, clock)
        if not local:
            for address in addresses:
                if problem := address_problem(address):
                    raise FetchError(
                        f"redirected to {following}: {target.host} is on {problem} "
                        f"({address}), off the public web"
                    )
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    request_path: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise FetchError(f"only http and https are fetched, not {scheme or 'this'}")
        if parts.username is not None or parts.password is not None:
            raise FetchError("a URL with a user name or password is not fetched")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise FetchError("the port is not a number from 1 to 65535") from None
        host = parts.hostname or ""
        if not host:
            raise FetchError("the URL has no host")
        if not host.isascii():
            from subscribers.addresses import ascii_domain
            from subscribers.errors import InvalidDomain

            try:
                host = ascii_domain(host)
            except InvalidDomain as exc:
                raise FetchError(str(exc)) from None
        path = parts.path or "/"
        request_path = f"{path}?{parts.query}" if parts.query else path
        return cls(
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            # Spaces and non-ASCII characters a server wrote into a Location.
            request_path=quote(request_path, safe="/:?#[]@!$&'()*+,;=%~-._"),
        )


@dataclass
class _Clock:
    timeout: float
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.deadline

    def expired(self) -> FetchError:
        return FetchError(f"no complete answer within {self.timeout:g} seconds")


def _look_up(host: str, resolve: Resolve, clock: _Clock) -> list[str]:
    """``host``'s addresses (itself if it is one), within the time left."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    found: list[str] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            found.extend(resolve(host))
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)

    worker = threading.Thread(target=run, name=f"look up {host}", daemon=True)
    worker.start()
    worker.join(clock.remaining())
    if worker.is_alive():
        raise clock.expired()
    if failed:
        reason = failed[0]
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        raise FetchError(f"cannot fetch: cannot look up {host}: {text}")
    try:
        addresses = [str(ipaddress.ip_address(address)) for address in found]
    except ValueError as exc:
        raise FetchError(f"cannot fetch: cannot look up {host}: {exc}") from None
    if not addresses:
        raise FetchError(f"cannot fetch: {host} has no address")
    return addresses


def _get(
    target: _Target,
    addresses: Sequence[str],
    headers: dict[str, str],
    connect: Connect,
    clock: _Clock,
    max_bytes: int,
) -> tuple[int, str, str | None, str, bytes]:
    """One GET: status, reason, Location, Content-Type and (unless it is a
    redirect) the body."""
    sock = _connect(target, addresses, connect, clock)
    # Closing the socket when time is up wakes whatever read is waiting, so
    # the timeout holds even against a server that answers a byte at a time.
    watchdog = threading.Timer(clock.deadline - time.monotonic(), _abort, (sock,))
    watchdog.daemon = True
    watchdog.start()
    conn = http.client.HTTPConnection(target.host, target.port)
    try:
        if target.scheme == "https":
            sock.settimeout(clock.remaining())
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            watchdog.args = (sock,)
        conn.sock = sock
        sock.settimeout(clock.remaining())
        conn.request(
            "GET",
            target.request_path,
            headers={"Host": target.netloc, "Accept-Encoding": "identity", **headers},
        )
        response = conn.getresponse()
        location = response.getheader("Location")
        content_type = response.getheader("Content-Type") or ""
        if response.status in _REDIRECTS:
            return response.status, response.reason, location, content_type, b""
        length = response.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > max_bytes:
            raise _too_large(max_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            sock.settimeout(clock.remaining())
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(chunk)
        if clock.passed:
            raise clock.expired()
        return response.status, response.reason, location, content_type, b"".join(chunks)
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if clock.passed or isinstance(exc, TimeoutError):
            raise clock.expired() from None
        raise FetchError(f"cannot fetch: {_reason(exc)}") from None
    finally:
        watchdog.cancel()
        conn.close()
        sock.close()


def _connect(
    target: _Target, addresses: Sequence[str], connect: Connect, clock: _Clock
) -> socket.socket:
    """A connection to the first of ``addresses`` that answers."""
    failure: OSError | None = None
    for address in addresses:
        try:
            return connect(address, target.port, clock.remaining())
        except TimeoutError:
            raise clock.expired() from None
        except OSError as exc:
            failure = exc
    if clock.passed:
        raise clock.expired()
    raise FetchError(f"cannot fetch: {_reason(failure)}")


def _abort(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's, which would also tear
    # down the TLS state another thread is reading through.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _too_large(max_bytes: int) -> FetchError:
    return FetchError(f"the answer is larger than {max_bytes / (1024 * 1024):g} MB")


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"the server's certificate is not valid: {reason.verify_message}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, http.client.HTTPException):
        return f"the answer is not valid HTTP ({type(reason).__name__})"
    return str(reason) or type(reason).__name__
