"""Feeds both ways: RSS 2.0 and Atom out for the archive, blog feeds in for drafts.

Out: :func:`feed_item_html` turns an issue's body into the HTML a feed item
carries (absolute URLs, only elements and attributes feed readers and the W3C
validator accept), and :func:`render_feeds` fills ``feed.xml.j2`` and
``feed.atom.j2`` from plain :class:`FeedChannel` and :class:`FeedItem` data.
The templates, not a feed library, decide the markup: it is all in view in
two short files, byte-stable from one build to the next (nothing stamps the
clock into it), and an editor can change it like every other template.

Item ids: a ``urn:uuid`` derived from the issue's date and slug. It does not
contain the site's address, so it survives re-rendering, a switch from http to
https and a move to another host; feed readers never show an issue twice.

In: :func:`read_blog_feed` fetches (from the public web only, see
:mod:`pipeline.fetch`, with a timeout and a descriptive user agent) or opens
a blog's RSS or Atom feed, parses it with feedparser and
returns plain :class:`BlogPost` data with every URL made absolute. A malformed
feed (feedparser's *bozo*) gives a warning and whatever could be read; an
unreachable or empty one raises :class:`FeedError`.
"""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urljoin, urlsplit

import jinja2
from markupsafe import Markup

from pipeline.body import SAFE_SCHEMES, Body, Figure
from pipeline.errors import FeedError

if TYPE_CHECKING:
    from pipeline.fetch import Network

log = logging.getLogger(__name__)

RSS_TEMPLATE = "feed.xml.j2"
ATOM_TEMPLATE = "feed.atom.j2"
GENERATOR = "painfree-publish"

# Fixed forever: changing it would change every item id in every feed.
ISSUE_ID_NAMESPACE = uuid.UUID("5b0f3d2e-7c41-5d7a-9a57-2f6e0c3b8d11")

# Characters XML 1.0 forbids, and the C1 controls the W3C validator reports.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def issue_guid(issue_date: date, slug: str) -> str:
    """The permanent id of an issue in every feed, whatever the site's URL."""
    return f"urn:uuid:{uuid.uuid5(ISSUE_ID_NAMESPACE, f'{issue_date.isoformat()}/{slug}')}"


def feed_guid(name: str) -> str:
    """The Atom feed's own id, from the newsletter's name."""
    return f"urn:uuid:{uuid.uuid5(ISSUE_ID_NAMESPACE, f'feed/{name}')}"


# ---------------------------------------------------------------------------
# Out: RSS and Atom
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedChannel:
    """What a feed says about the newsletter."""

    title: str
    link: str
    description: str
    language: str
    rss_url: str
    atom_url: str
    logo_url: str
    logo_size: int
    id: str
    author: str
    author_email: str = ""
    updated: datetime | None = None
    generator: str = GENERATOR

    @property
    def atom_updated(self) -> datetime:
        """Atom requires a date even with no entries yet; that one is fixed."""
        return self.updated or datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedItem:
    """One published issue as the feeds show it."""

    title: str
    url: str
    guid: str
    published: datetime
    summary: str
    content_html: str
    author: str = ""
    author_email: str = ""
    tags: tuple[str, ...] = ()


def xml_text(value: object) -> Markup:
    """Text for XML: forbidden characters dropped, ``& < > "`` written as
    hexadecimal references, the form the RSS Best Practices Profile asks for."""
    text = _NOT_XML.sub("", str(value))
    text = (
        text.replace("&", "&#x26;")
        .replace("<", "&#x3C;")
        .replace(">", "&#x3E;")
        .replace('"', "&#x22;")
    )
    return Markup(text)  # noqa: S704 - every markup character is escaped above


def xml_cdata(value: object) -> Markup:
    """HTML for an XML element, as a CDATA section (readable in the file)."""
    text = _NOT_XML.sub("", str(value)).replace("]]>", "]]]]><![CDATA[>")
    return Markup(f"<![CDATA[{text}]]>")  # noqa: S704 - CDATA holds any text but "]]>"


def rfc822(moment: datetime) -> str:
    """``Tue, 01 Dec 2026 07:00:00 GMT``"""
    return format_datetime(_utc(moment), usegmt=True)


def rfc3339(moment: datetime) -> str:
    """``2026-12-01T07:00:00Z``"""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


FILTERS = {"xml": xml_text, "cdata": xml_cdata, "rfc822": rfc822, "rfc3339": rfc3339}


def render_feeds(
    env: jinja2.Environment, channel: FeedChannel, items: Sequence[FeedItem]
) -> tuple[str, str]:
    """(RSS 2.0, Atom) for ``items``, newest first."""
    context = {"channel": channel, "items": items}
    rss = env.get_template(RSS_TEMPLATE).render(context)
    atom = env.get_template(ATOM_TEMPLATE).render(context)
    return rss, atom


# Elements and attributes a feed item's HTML may carry: what markdown-it
# produces for an issue, within the W3C validator's list of safe HTML.
_FEED_ELEMENTS = frozenset(
    (
        "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "figcaption", "figure", "h1",
        "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong",
        "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    )
)
_FEED_ATTRIBUTES = {
    "a": ("href", "title"),
    "img": ("src", "alt", "title", "width", "height"),
    "ol": ("start",),
    "code": ("class",),
    "th": ("align",),
    "td": ("align",),
}
DROP_WITH_CONTENT = frozenset(
    (
        "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
    )
)
"""Elements whose content is no text for a reader: dropped with it."""
_VOID = frozenset(("br", "hr", "img"))
_URL_ATTRIBUTES = ("href", "src")
_TEXT_ALIGN = re.compile(r"text-align\s*:\s*(left|right|center)", re.IGNORECASE)


class _FeedHtml(HTMLParser):
    """Re-serializes trusted-but-styled HTML with only the allowed markup."""

    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping += 1
            return
        if self.skipping or tag not in _FEED_ELEMENTS:
            return
        values = dict(attrs)
        kept: list[str] = []
        for name in _FEED_ATTRIBUTES.get(tag, ()):
            value = values.get(name)
            if name == "align" and value is None:
                match = _TEXT_ALIGN.search(values.get("style") or "")
                value = match.group(1).lower() if match else None
            if value is None:
                continue
            if name in _URL_ATTRIBUTES:
                value = absolute_url(value, self.base_url)
                if value is None:
                    continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        self.out.append(f"<{tag}{''.join(kept)}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_WITH_CONTENT:
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)
            return
        if not self.skipping and tag in _FEED_ELEMENTS and tag not in _VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))


def absolute_url(value: str, base_url: str) -> str | None:
    """``value`` resolved against ``base_url``; None for unsafe schemes."""
    value = value.strip()
    if not value:
        return None
    url = urljoin(base_url, value)
    if urlsplit(url).scheme.lower() not in SAFE_SCHEMES:
        return None
    return url


def clean_feed_html(fragment: str, base_url: str) -> str:
    """``fragment`` with only feed-safe markup and absolute URLs."""
    parser = _FeedHtml(base_url)
    parser.feed(fragment)
    parser.close()
    return "".join(parser.out)


def feed_item_html(body: Body, base_url: str) -> str:
    """An issue's article, sign-off and P.S. as a feed item's HTML."""
    parts: list[str] = []
    for block in body.article:
        if isinstance(block, Figure):
            src = absolute_url(block.src, base_url)
            if src is None:
                continue
            image = f'<img src="{html.escape(src)}" alt="{html.escape(block.alt)}">'
            caption = (
                f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
            )
            parts.append(f"<figure>{image}{caption}</figure>")
        else:
            parts.append(clean_feed_html(block.html, base_url))
    for extra in (body.sign_off, body.postscript):
        if extra:
            parts.append(clean_feed_html(extra, base_url))
    return "\n".join(part.strip() for part in parts if part.strip())


# ---------------------------------------------------------------------------
# In: a blog's feed
# ---------------------------------------------------------------------------

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


def user_agent(site_url: str = "") -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("painfree-publish")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        ours = "0"
    contact = f"; +{site_url}" if site_url else ""
    return f"painfree-publish/{ours} (newsletter draft from a blog feed{contact})"


def fetch_feed(
    url: str,
    *,
    timeout: float = FETCH_TIMEOUT,
    agent: str = "",
    network: Network | None = None,
) -> bytes:
    """The body of ``url``, fetched from the public web only (see
    :mod:`pipeline.fetch`: no redirects off it, at most
    :data:`MAX_FEED_BYTES`, ``timeout`` seconds in all); FeedError naming
    ``url`` and why on any failure."""
    from pipeline.fetch import FetchError, fetch_public

    try:
        fetched = fetch_public(
            url,
            timeout=timeout,
            max_bytes=MAX_FEED_BYTES,
            headers={
                "User-Agent": agent or user_agent(),
                "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                "text/xml;q=0.9, */*;q=0.1",
            },
            network=network,
        )
    except FetchError as exc:
        raise FeedError(f"{url}: {exc}") from None
    return fetched.body


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
    """Fetch or open ``source`` (an http(s) URL or a file) and parse it;
    ``network``: see :func:`fetch_feed`."""
    if is_url(source):
        data = fetch_feed(source, timeout=timeout, agent=agent, network=network)
        source_url = source
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FeedError(f"{source}: cannot read: {exc.strerror or exc}") from None
        source_url = ""
    return parse_blog_feed(data, source, source_url)


def parse_blog_feed(data: bytes, source: str, source_url: str = "") -> BlogFeed:
    """Parse a feed document; relative URLs resolve against the feed's link."""
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
    return " ".join(_NOT_XML.sub(" ", html.unescape(text)).split())


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
