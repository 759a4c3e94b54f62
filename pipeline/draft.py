"""Drafting an issue from the blog's feed, for the editor to finish.

:func:`draft_from_feed` reads the blog's RSS or Atom feed (see
:mod:`pipeline.blogfeed`), picks the newest posts and writes a dated issue in
issues/ with the same front matter as ``publish new``: a heading per post,
its picture when the feed has one, a short summary and a link to read on.

Summaries arrive as HTML from a site we do not control. They become plain,
markdown-safe text: scripts, styles and embeds are dropped with their
content, images (tracking pixels among them) are dropped, a link survives
only with an http(s) or mailto target made absolute against the feed's link,
and every character markdown would read as markup is escaped.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from pipeline.authoring import NewIssue, signature, write_new_issue
from pipeline.blogfeed import FETCH_TIMEOUT, BlogFeed, BlogPost, read_blog_feed
from pipeline.blogfeed import user_agent as feed_user_agent
from pipeline.body import POSTSCRIPT
from pipeline.config import Settings
from pipeline.errors import FeedError, PublishError
from pipeline.feeds import DROP_WITH_CONTENT, absolute_url

if TYPE_CHECKING:
    from pipeline.fetch import Network

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 5
SUMMARY_CHARACTERS = 320
PREHEADER_CHARACTERS = 130
LINE_WIDTH = 78


@dataclass(frozen=True)
class Draft:
    """The draft written, the posts in it and any warning about the feed."""

    path: Path
    posts: tuple[BlogPost, ...]
    warnings: tuple[str, ...]


def draft_from_feed(
    settings: Settings,
    source: str,
    *,
    today: date,
    since: date | None = None,
    limit: int = DEFAULT_LIMIT,
    timeout: float = FETCH_TIMEOUT,
    network: Network | None = None,
) -> Draft:
    """Write issues/<today>-<slug>.md introducing the feed's newest posts.

    A feed URL is fetched from the public web only, in ``timeout`` seconds
    at most (see :mod:`pipeline.fetch`; ``network`` is how hosts are looked
    up and connected to, the system's by default). Raises :class:`FeedError`
    for a feed that cannot be fetched, read or has no posts (since
    ``since``), and :class:`PublishError` if the file exists; nothing is
    written then.
    """
    if limit < 1:
        raise PublishError("--limit must be at least 1")
    feed = read_blog_feed(
        source, timeout=timeout, agent=feed_user_agent(settings.site_url), network=network
    )
    posts = choose_posts(feed.posts, since=since, limit=limit)
    if not posts:
        when = f" since {since.isoformat()}" if since else ""
        raise FeedError(f"{source}: no posts{when}")
    draft = compose_draft(settings, feed, posts, today)
    path = write_new_issue(settings, draft, if_exists="finish or remove that draft first")
    log.info("drafted %s from %d posts of %s", path, len(posts), source)
    return Draft(path=path, posts=posts, warnings=feed.warnings)


def choose_posts(
    posts: Iterable[BlogPost], *, since: date | None = None, limit: int = DEFAULT_LIMIT
) -> tuple[BlogPost, ...]:
    """The newest ``limit`` posts, published on or after ``since``.

    Undated posts keep the feed's order after the dated ones, and are left out
    when ``since`` asks for a date they cannot show.
    """
    chosen = [
        post
        for post in posts
        if since is None or (post.published is not None and post.published.date() >= since)
    ]
    dated = sorted(
        (post for post in chosen if post.published is not None),
        key=lambda post: post.published or datetime.min,
        reverse=True,
    )
    undated = [post for post in chosen if post.published is None]
    return tuple([*dated, *undated][:limit])


def compose_draft(
    settings: Settings, feed: BlogFeed, posts: Sequence[BlogPost], today: date
) -> NewIssue:
    """The draft's title, front matter and text."""
    first = posts[0].title
    title = first if len(posts) == 1 else f"From the blog: {first}, and more"
    preheader = _shorten(
        "New on the blog: " + "; ".join(post.title for post in posts) + ".",
        PREHEADER_CHARACTERS,
    )
    tags = tuple(dict.fromkeys(tag for post in posts for tag in post.tags))[:6]
    blog = settings.blog_url or feed.link
    where = f"[the blog]({markdown_url(blog)})" if blog else "the blog"
    parts = [
        _wrap(f"Here is what is new on {where} since the last issue. "
              "(Write a line or two for the reader here.)"),
    ]
    for post in posts:
        parts.append(f"## {markdown_text(post.title)}")
        if post.image:
            alt = markdown_text(post.image_alt or post.title)
            parts.append(f"![{alt}]({markdown_url(post.image)})")
        summary = summary_markdown(post.summary_html, post.base_url)
        read_on = f"[Read the whole post]({markdown_url(post.link)})" if post.link else ""
        parts.append(_wrap(" ".join(part for part in (summary, read_on) if part)))
    return NewIssue(
        title=title,
        date=today,
        author=settings.author,
        body="\n\n".join(part for part in parts if part),
        signature=markdown_text(signature(settings)),
        preheader=preheader,
        tags=tags,
    )


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


# ---------------------------------------------------------------------------
# HTML to markdown-safe text
# ---------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~&])")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+=])")
_SKIP = DROP_WITH_CONTENT | frozenset(
    ("head", "title", "form", "button", "select", "textarea", "audio", "video", "canvas")
)
_BREAKS = frozenset(
    (
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr",
        "td", "th", "table", "section", "article", "figure", "figcaption", "pre", "hr", "header",
        "footer", "aside", "dd", "dt",
    )
)


def markdown_text(text: str) -> str:
    """Plain text with every markdown metacharacter escaped, on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def markdown_url(url: str) -> str:
    """A URL that can stand inside ``(...)`` of a markdown link."""
    return quote(url, safe="/:?#@!$&'*+,;=%~-._")


class _SummaryText(HTMLParser):
    """Collects the visible text of an HTML summary as (text, link) runs, the
    link absolute and safe or empty; None marks the edge of a block."""

    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.parts: list[tuple[str, str] | None] = []
        self.skipping = 0
        self.link = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BREAKS:
            self.parts.append(None)
        elif tag == "a" and not self.skipping:
            self.link = absolute_url(dict(attrs).get("href") or "", self.base_url) or ""

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS:
            self.parts.append(None)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BREAKS:
            self.parts.append(None)
        elif tag == "a":
            self.link = ""

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        last = self.parts[-1] if self.parts else None
        if last is not None and last[1] == self.link:
            self.parts[-1] = (last[0] + data, self.link)
        else:
            self.parts.append((data, self.link))


_ENDS_SENTENCE = ".!?:;…—-–,)\"'’”"


def summary_markdown(
    summary_html: str, base_url: str, limit: int = SUMMARY_CHARACTERS
) -> str:
    """An HTML summary as one markdown-safe paragraph of at most ``limit``
    visible characters, with its http(s) links kept and made absolute.

    Blocks (paragraphs, list items, headings) run together as sentences.
    """
    parser = _SummaryText(base_url)
    parser.feed(summary_html)
    parser.close()
    pieces: list[str] = []
    room = limit
    last = ""
    for part in parser.parts:
        if part is None:
            if last and last not in _ENDS_SENTENCE:
                pieces.append(".")
                last = "."
            pieces.append(" ")
            continue
        raw, url = part
        text = " ".join(raw.split())
        if not text:
            pieces.append(" ")
            continue
        cut = len(text) > room
        if cut:
            text = text[:room] if text[room] == " " else text[:room].rpartition(" ")[0]
        room -= len(text) + 1
        if text:
            last = text[-1]
            core = markdown_text(text)
            core = f"[{core}]({markdown_url(url)})" if url else core
            pieces.append(_space(raw[0]) + core + _space(raw[-1]))
        if cut:
            pieces.append("…")
            break
    paragraph = " ".join("".join(pieces).split()).replace(" …", "…")
    if POSTSCRIPT.match(paragraph):
        # A paragraph starting "P.S." would become the issue's postscript.
        paragraph = "&#80;" + paragraph[1:]
    return paragraph


def _space(character: str) -> str:
    return " " if character.isspace() else ""


_LINK = re.compile(r"\[(?:\\.|[^\]\\])*\]\([^)\s]*\)")
_KEEP_TOGETHER = "\x00"


def _wrap(paragraph: str) -> str:
    """Wrap at LINE_WIDTH; a line must not start with what markdown would read
    as a list item or a heading underline."""
    glued = _LINK.sub(lambda m: m.group(0).replace(" ", _KEEP_TOGETHER), paragraph)
    lines = textwrap.wrap(glued, LINE_WIDTH, break_long_words=False, break_on_hyphens=False)
    out = []
    for wrapped in lines:
        line = wrapped.replace(_KEEP_TOGETHER, " ")
        match = _LINE_START.match(line)
        if match and match.group(1):
            line = f"{match.group(1)}\\{match.group(2)}{line[match.end():]}"
        elif match:
            line = "\\" + line
        out.append(line)
    return "\n".join(out)
