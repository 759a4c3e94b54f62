"""RSS 2.0 and Atom out: the archive's feeds, from published issues.

    Body of an issue ──feed_item_html──▶ FeedItem.content_html
    FeedChannel + [FeedItem, ...] ──render_feeds──▶ (feed.xml, feed.atom)

:func:`feed_item_html` turns an issue's body into the HTML a feed item
carries (absolute URLs, only elements and attributes feed readers and the W3C
validator accept), and :func:`render_feeds` fills ``feed.xml.j2`` and
``feed.atom.j2`` from plain :class:`FeedChannel` and :class:`FeedItem` data.
The templates, not a feed library, decide the markup: it is all in view in
two short files, byte-stable from one build to the next (nothing stamps the
clock into it), and an editor can change it like every other template. The
filters they are filled with (``xml``, ``rfc822``...) are
:mod:`pipeline.feed_filters`'s, which every command that loads the site's
templates imports without this module.

Item ids: a ``urn:uuid`` derived from the issue's date and slug. It does not
contain the site's address, so it survives re-rendering, a switch from http to
https and a move to another host; feed readers never show an issue twice.

Reading a blog's feed, the other way, is :mod:`pipeline.blogfeed`; it shares
:data:`DROP_WITH_CONTENT` from here, and :data:`pipeline.feed_filters.NOT_XML`.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import jinja2

from pipeline.body import SAFE_SCHEMES, Body, Figure

RSS_TEMPLATE = "feed.xml.j2"
ATOM_TEMPLATE = "feed.atom.j2"
GENERATOR = "painfree-publish"

# Fixed forever: changing it would change every item id in every feed.
ISSUE_ID_NAMESPACE = uuid.UUID("5b0f3d2e-7c41-5d7a-9a57-2f6e0c3b8d11")


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
