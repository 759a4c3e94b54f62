"""RSS 2.0 and Atom out: the archive's feeds, from published issues.

    Body of an issue ──feed_item_html──▶ FeedItem.content_html
    FeedChannel + [FeedItem, ...] ──render_feeds──▶ (feed.xml, feed.atom)

:func:`feed_item_html` turns an issue's body into the HTML a feed item
carries (absolute URLs, only elements and attributes feed readers and the W3C
validator accept), and :func:`render_feeds` fills ``feed.xml.j2`` and
``feed.atom.j2`` from plain :class:`FeedChannel` and :class:`FeedItem` data.
The templates, not a feed library, decide the markup: it is all in view in
two short files, byte-stable from one build to the next (nothing stamps the
clock into it), and an editor can change it like every other template.

Item ids: a ``urn:uuid`` derived from the issue's date and slug. It does not
contain the site's address, so it survives re-rendering, a switch from http to
https and a move to another host; feed readers never show an issue twice.

Reading a blog's feed, the other way, is :mod:`pipeline.blogfeed`; it shares
:data:`DROP_WITH_CONTENT` and :data:`NOT_XML` from here.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import jinja2
from markupsafe import Markup

from pipeline.body import SAFE_SCHEMES, Body, Figure

RSS_TEMPLATE = "feed.xml.j2"
ATOM_TEMPLATE = "feed.atom.j2"
GENERATOR = "painfree-publish"

# Fixed forever: changing it would change every item id in every feed.
ISSUE_ID_NAMESPACE = uuid.UUID("5b0f3d2e-7c41-5d7a-9a57-2f6e0c3b8d11")

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
"""Characters XML 1.0 forbids, and the C1 controls the W3C validator reports."""


def issue_guid(issue_date: date, slug: str) -> str:
    """The permanent id of an issue in every feed, whatever the site's URL."""
    return f"urn:uuid:{uuid.uuid5(ISSUE_ID_NAMESPACE, f'{issue_date.isoformat()}/{slug}')}"


def feed_guid(name: str) -> str:
    """The Atom feed's own id, from the newsletter's name."""
    return f"urn:uuid:{uuid.uuid5(ISSUE_ID_NAMESPACE, f'feed/{name}')}"


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
    text = NOT_XML.sub("", str(value))
    text = (
        text.replace("&", "&#x26;")
        .replace("<", "&#x3C;")
        .replace(">", "&#x3E;")
        .replace('"', "&#x22;")
    )
    return Markup(text)  # noqa: S704 - every markup character is escaped above


def xml_cdata(value: object) -> Markup:
    """HTML for an XML element, as a CDATA section (readable in the file)."""
    text = NOT_XML.sub("", str(value)).replace("]]>", "]]]]><![CDATA[>")
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
# fmt: off
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
# fmt: on
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
