"""Where a signup comes from: the page it was made on (its *source*, kept
with the consent), and the site whose page posted it (the origin check).

    signup_source(text, default)     "blog sidebar", "issue page"...: one line
                                     of at most MAX_SOURCE characters, or default
    check_source(text)               the same for the editor's own text, refused
                                     (SubscriberError) rather than cleaned
    origin_of(url)                   "https://example.com" (no path, default port)
    poster(origin, fetch_site, ...)  OWN | BLOG | FOREIGN, from the request's
                                     Origin and Sec-Fetch-Site headers

There is no form token: the blog's embedded form could not carry one. A
browser names the page a post comes from in ``Origin`` (and, since 2020-23,
``Sec-Fetch-Site``), and no page can forge either header. A post that a
browser says came from another site than the newsletter's own or its
blog's is answered like any other and does nothing. A request without
either header is no cross-site browser post (a script, ``curl``, a very old
browser) and is taken as before: what keeps it in check is the signup
guard (per network, per mailbox, per domain) and double opt-in, not the
origin. ``Origin: null`` comes from a page that sends no referrer, which
the service's own pages do; without ``Sec-Fetch-Site`` it cannot be told
apart from a stranger's such page, so it is taken as the service's own.

Nothing here touches the network or the database.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from urllib.parse import urlsplit

from subscribers.errors import SubscriberError
from subscribers.text import NOT_IN_LINE, one_line

MAX_SOURCE = 60
"""Characters of a signup's source kept with its consent."""
SIGNUP_PAGE = "signup page"
"""The source of a signup from the service's own form, unless it says otherwise."""
ISSUE_PAGE = "issue page"
"""The source of a signup from the form at the foot of an issue's page."""
BLOG_SIDEBAR = "blog sidebar"
"""The source `publish embed` gives its form unless told another."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def signup_source(text: str | None, default: str = SIGNUP_PAGE) -> str:
    """A source as the form or ``?ref=`` gave it, made fit to keep: one line
    (control characters are spaces), at most :data:`MAX_SOURCE` characters;
    ``default`` when nothing is left."""
    cleaned = one_line(text or "")[:MAX_SOURCE].strip()
    return cleaned or default


def check_source(text: str) -> str:
    """The editor's own source for a form (``publish embed --source``),
    trimmed; :class:`SubscriberError` when empty, too long or not printable."""
    trimmed = text.strip()
    if not trimmed:
        raise SubscriberError("source: is empty; name the page the form is on")
    if NOT_IN_LINE.search(trimmed):
        raise SubscriberError("source: has a control character; use printable text")
    if len(trimmed) > MAX_SOURCE:
        raise SubscriberError(f"source: longer than {MAX_SOURCE} characters")
    return trimmed


def origin_of(url: str | None) -> str | None:
    """The origin of an absolute http(s) URL, as browsers write it in
    ``Origin``: scheme and host in lowercase, the port only when it is not
    the scheme's own. None for anything else (empty, relative, ``null``)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


class Poster(StrEnum):
    """Whose page a signup was posted from."""

    OWN = "own"
    """The service's own pages or the site's, or no browser's cross-site post."""
    BLOG = "blog"
    """The blog's, where `publish embed`'s form is pasted."""
    FOREIGN = "foreign"
    """Another site's: answered like the blog's, and nothing is done."""


def poster(
    origin: str | None,
    fetch_site: str | None,
    *,
    own: Collection[str | None],
    blog: str | None,
) -> Poster:
    """Who posted a request, from its ``Origin`` and ``Sec-Fetch-Site``
    headers (None when absent), given the origins that are the service's
    ``own`` (the site's, the one the request was sent to) and the ``blog``'s."""
    site = (fetch_site or "").strip().lower()
    if site == "same-origin":
        return Poster.OWN
    named = origin_of(origin)
    if named is None:
        if (origin is None or origin.strip() == "null") and site in ("", "none"):
            return Poster.OWN
        return Poster.FOREIGN
    if named in {o for o in own if o}:
        return Poster.OWN
    if blog and named == blog:
        return Poster.BLOG
    return Poster.FOREIGN


__all__ = [
    "BLOG_SIDEBAR",
    "ISSUE_PAGE",
    "MAX_SOURCE",
    "SIGNUP_PAGE",
    "Poster",
    "check_source",
    "origin_of",
    "poster",
    "signup_source",
]
