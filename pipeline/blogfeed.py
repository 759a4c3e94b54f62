"""Reading a blog's RSS or Atom feed, for ``publish draft --from-feed``.

    read_blog_feed(source)            the one entry point: a URL fetched from
      │                               the public web (pipeline.fetch), or a file
      └─ parse_blog_feed(bytes, ...)  bytes → BlogFeed, a pure function
           └─ BlogPost per entry      title, link, summary HTML, date, picture

:func:`read_blog_feed` is the only place a feed's bytes come from: it fetches
a URL (from the public web only, with a timeout and a descriptive user agent)
or reads a file. :func:`parse_blog_feed` turns those bytes into plain
:class:`BlogPost` data with every URL made absolute; it touches neither the
network nor the disk, so it is tested on bytes alone. A malformed feed
(feedparser's *bozo*) gives a warning and whatever could be read; an
unreachable or empty one raises :class:`FeedError`.

Summaries stay HTML: :mod:`pipeline.draft` turns them into markdown-safe text.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urljoin, urlsplit

from pipeline.errors import FeedError
from pipeline.feed_filters import NOT_XML
from pipeline.feeds import DROP_WITH_CONTENT

if TYPE_CHECKING:
    from pipeline.fetch import Network

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 15.0
"""Seconds a feed's fetch may take in all, redirects included."""
MAX_FEED_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class BlogPost:
    """One entry of a blog's feed, with absolute URLs; summary still HTML."""

    title: str
    link: str
    summary_html: str
    base_url: str
    published: datetime | None = None
    image: str = ""
    image_alt: str = ""
    tags: tuple[str, ...] = ()
    author: str = ""


@dataclass(frozen=True)
class BlogFeed:
    """A blog's feed as read: its posts in the feed's order, and any warning."""

    source: str
    title: str
    link: str
    posts: tuple[BlogPost, ...]
    warnings: tuple[str, ...] = field(default=())


FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
"""The Accept header of a feed's fetch: a feed first, any XML next."""


def user_agent(site_url: str = "") -> str:
    """The User-Agent a feed's fetch sends: what is asking and why, and the
    newsletter's site for the blog's owner to look at."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("painfree-publish")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        ours = "0"
    contact = f"; +{site_url}" if site_url else ""
    return f"painfree-publish/{ours} (newsletter draft from a blog feed{contact})"


def is_url(source: str) -> bool:
    """An http(s) URL (else a file name)."""
    return _is_http(urlsplit(source))


def _is_http(parts: SplitResult) -> bool:
    return parts.scheme.lower() in ("http", "https")


def read_blog_feed(
    source: str,
    *,
    timeout: float = FETCH_TIMEOUT,
    agent: str = "",
    network: Network | None = None,
) -> BlogFeed:
    """The feed at ``source``, an http(s) URL or a file, read and parsed.

    The only place a feed's bytes come from. A URL is fetched from the public
    web only (see :mod:`pipeline.fetch`: no redirects off it, at most
    :data:`MAX_FEED_BYTES`, ``timeout`` seconds in all; ``agent`` is the
    User-Agent, :func:`user_agent` by default, and ``network`` how hosts are
    looked up and connected to); a file is read. :class:`FeedError` naming
    ``source`` and why on any failure.
    """
    if not is_url(source):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise FeedError(f"{source}: cannot read: {exc.strerror or exc}") from None
        return parse_blog_feed(data, source)

    from pipeline.fetch import FetchError, fetch_public

    try:
        fetched = fetch_public(
            source,
            timeout=timeout,
            max_bytes=MAX_FEED_BYTES,
            headers={"User-Agent": agent or user_agent(), "Accept": FEED_ACCEPT},
            network=network,
        )
    except FetchError as exc:
        raise FeedError(f"{source}: {exc}") from None
    return parse_blog_feed(fetched.body, source, source)


def parse_blog_feed(data: bytes, source: str, source_url: str = "") -> BlogFeed:
    """Parse a feed document read from ``source`` (named in messages);
    relative URLs resolve against the feed's link, then ``source_url``."""
    import io

    import feedparser  # type: ignore[import-untyped]

    if not data.strip():
        raise FeedError(f"{source}: empty; not a feed")
    # No content-location: relative URLs resolve against the feed's own link
    # (or an xml:base in it), here, not against wherever the feed was fetched.
    # feedparser's sanitizer stays off: it keeps the text of the elements it
    # removes (an iframe's fallback, say), and nothing here is ever shown as
    # HTML: drafts take text and http(s) links out of it (pipeline.draft).
    parsed = feedparser.parse(io.BytesIO(data), resolve_relative_uris=False, sanitize_html=False)
    head: Mapping[str, Any] = parsed.get("feed", {})
    entries: list[Mapping[str, Any]] = list(parsed.get("entries", []))
    warnings: list[str] = []
    if parsed.get("bozo"):
        problem = _bozo_message(parsed.get("bozo_exception"))
        if not entries:
            raise FeedError(f"{source}: not a readable feed ({problem})")
        warnings.append(
            f"{source}: the feed is malformed ({problem}); using the {len(entries)} "
            f"post{'s' if len(entries) != 1 else ''} that could be read"
        )
        log.warning("%s", warnings[-1])
    if not entries and not parsed.get("version"):
        raise FeedError(f"{source}: not an RSS or Atom feed")

    feed_link = _http_url(urljoin(source_url, str(head.get("link") or "")))
    base = feed_link or source_url
    posts = [post for entry in entries if (post := _post(entry, base)) is not None]
    return BlogFeed(
        source=source,
        title=_one_line(str(head.get("title") or "")),
        link=feed_link,
        posts=tuple(posts),
        warnings=tuple(warnings),
    )


def _bozo_message(exc: object) -> str:
    """feedparser's complaint in one line, with its line number when known."""
    if exc is None:
        return "unknown problem"
    get_message = getattr(exc, "getMessage", None)  # the XML parser's own errors
    text = _one_line(str(get_message() if callable(get_message) else exc))
    get_line = getattr(exc, "getLineNumber", None)
    return f"line {get_line()}: {text}" if callable(get_line) else text


def _one_line(text: str) -> str:
    return " ".join(NOT_XML.sub(" ", html.unescape(text)).split())


def _http_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else ""."""
    parts = urlsplit(url)
    return url if _is_http(parts) and parts.netloc else ""


def _post(entry: Mapping[str, Any], feed_base: str) -> BlogPost | None:
    detail = entry.get("summary_detail") or entry.get("title_detail") or {}
    base = urljoin(feed_base, detail.get("base") or "") if detail.get("base") else feed_base
    title = _plain_title(entry)
    link = _http_url(urljoin(base, str(entry.get("link") or "")))
    summary = str(entry.get("summary") or "")
    if not summary and entry.get("content"):
        summary = str(entry["content"][0].get("value") or "")
    if not title and not link:
        return None
    image, alt = _entry_image(entry, base, summary)
    tags = tuple(
        dict.fromkeys(
            tag for t in entry.get("tags") or () if (tag := _one_line(str(t.get("term") or "")))
        )
    )
    author = _one_line(str(entry.get("author") or ""))
    return BlogPost(
        title=title or link,
        link=link,
        summary_html=summary,
        base_url=link or base,
        published=_entry_date(entry),
        image=image,
        image_alt=alt,
        tags=tags,
        author=author,
    )


_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _plain_title(entry: Mapping[str, Any]) -> str:
    """The entry's title as text: an HTML title loses its tags, and the
    content of script and style elements with them."""
    title = str(entry.get("title") or "")
    if (entry.get("title_detail") or {}).get("type") in _HTML_TYPES:
        title = html_text(title)
    return _one_line(title)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(fragment: str) -> str:
    """The visible text of an HTML fragment."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return "".join(parser.parts)


def _entry_date(entry: Mapping[str, Any]) -> datetime | None:
    import calendar

    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


_PIXEL_NAME = re.compile(
    r"(?:^|[/._~-])(?:pixel|track|tracking|tracker|beacon|spacer|blank|1x1|open)(?:[/._?-]|$)",
    re.IGNORECASE,
)


def _entry_image(entry: Mapping[str, Any], base: str, summary: str) -> tuple[str, str]:
    """The post's picture: media:content, media:thumbnail, an image enclosure,
    then the first real <img> of its HTML; never a tracking pixel."""
    candidates: list[tuple[str, str, Mapping[str, Any]]] = []
    for media in entry.get("media_content") or ():
        kind = str(media.get("medium") or media.get("type") or "image")
        if kind.startswith("image"):
            candidates.append((str(media.get("url") or ""), "", media))
    for thumb in entry.get("media_thumbnail") or ():
        candidates.append((str(thumb.get("url") or ""), "", thumb))
    for enclosure in entry.get("enclosures") or ():
        if str(enclosure.get("type") or "").startswith("image/"):
            candidates.append((str(enclosure.get("href") or ""), "", enclosure))
    for content in [summary, *(c.get("value", "") for c in entry.get("content") or ())]:
        candidates.extend((src, alt, attrs) for src, alt, attrs in _images_in(str(content)))
    for src, alt, attrs in candidates:
        url = _http_url(urljoin(base, src.strip()))
        if url and not _is_pixel(url, attrs):
            return url, _one_line(alt)
    return "", ""


def _images_in(fragment: str) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    found: list[tuple[str, str, Mapping[str, Any]]] = []

    class Images(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                values = {k: v or "" for k, v in attrs}
                found.append((values.get("src", ""), values.get("alt", ""), values))

    Images().feed(fragment)
    return found


def _is_pixel(url: str, attrs: Mapping[str, Any]) -> bool:
    for key in ("width", "height"):
        text = str(attrs.get(key) or "").strip().removesuffix("px")
        if text.isdigit() and int(text) <= 2:
            return True
    style = str(attrs.get("style") or "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    parts = urlsplit(url)
    return bool(_PIXEL_NAME.search(f"{parts.netloc}{parts.path}"))
