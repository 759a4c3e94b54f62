"""The link a click is counted under: the URL a reader clicked, reduced to
what says which link it was and nothing about who clicked it.

    normalize_link("HTTPS://Example.com:443/a/b?utm_source=x#top")
        ──> "https://example.com/a/b"
    normalize_link("https://site.example/unsubscribe/42.Zm9vYmFyYmF6cXV4cXV1eA")
        ──> "https://site.example/unsubscribe/{token}"
    normalize_link("javascript:alert(1)") ──> None   (not counted)

The query string and fragment are dropped (campaign tags, and any per-reader
value a link may carry there), as are a default port and user info; the
scheme and host are lowercased, the host written as IDNA 2008 does, and the
path percent-encoded where it is not ASCII. A path segment shaped like a
signed token (:data:`TOKEN_SEGMENT`, as in the unsubscribe and confirmation
links, whose first field is the subscriber's id) or like a long random key
(:data:`RANDOM_SEGMENT`) becomes ``{token}``, so no link ties a click to a
reader. Anything that is not an absolute http(s) URL, or that is longer than
:data:`MAX_LINK` once normalized, gives None: the click is not counted.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from subscribers.addresses import ascii_domain
from subscribers.errors import InvalidDomain

MAX_LINK = 2000
"""Characters of a normalized link (engagement_links.url)."""

TOKEN_SEGMENT = re.compile(r"^\d+(?:\.[A-Za-z0-9_-]+)+$")
"""``<subscriber id>.<mac>`` and ``<id>.<signup>.<issued>.<mac>``:
:mod:`subscribers.tokens`' unsubscribe and confirmation tokens."""

RANDOM_SEGMENT = re.compile(r"^(?=.*\d)(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9_\-.=~]{20,}$")
"""20 or more characters mixing digits, lower and upper case: a key or
token from some other site's personal link. Slugs are lowercase words and
are kept."""

PLACEHOLDER = "{token}"
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$")


def normalize_link(url: object) -> str | None:
    """The link ``url`` is counted under, or None when it is not one."""
    if not isinstance(url, str) or len(url) > 4 * MAX_LINK:
        return None
    text = url.strip()
    if any(c.isspace() or not c.isprintable() for c in text):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = _host(parts.hostname.rstrip("."))
    if host is None:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = "/".join(_segment(s) for s in quote(parts.path or "/", safe=_PATH_SAFE).split("/"))
    link = f"{scheme}://{netloc}{path or '/'}"
    return link if len(link) <= MAX_LINK else None


def _segment(segment: str) -> str:
    if TOKEN_SEGMENT.match(segment) or RANDOM_SEGMENT.match(segment):
        return PLACEHOLDER
    return segment


def _host(host: str) -> str | None:
    """The host as a link is counted under: an IP address (IPv6 in
    brackets) or a domain in IDNA 2008's ASCII; None for neither."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{address}]" if address.version == 6 else str(address)
    try:
        domain = ascii_domain(host)
    except InvalidDomain:
        return None
    return domain if _HOST.match(domain) else None
