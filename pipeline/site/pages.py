"""The site's own pages and feeds, made from the archive's entries.

Every build makes these afresh (they are cheap: no rendering of issues),
from the web templates in templates/web/ (the newsletter's, else the
packaged copy), which the command's context read into memory
(:class:`~pipeline.templates.WebTemplates`):

    ArchiveEntry* ─┬─ index.html.j2        ─▶ index.html              the archive, newest first
                   ├─ tag.html.j2          ─▶ tags/<tag>/index.html   each tag's issues
                   ├─ feed.xml.j2 / .atom  ─▶ feed.xml, feed.atom     the FEED_SIZE newest
                   └─ sitemap.xml.j2       ─▶ sitemap.xml             every page worth listing
    Settings ──────┬─ subscribe.html.j2    ─▶ subscribe/index.html    with the signup form
                   ├─ 404.html.j2          ─▶ 404.html
                   └─────────────────────────▶ robots.txt              pointing at the sitemap
    templates/web/static/* ───────────────▶ static/*                  the logo, the favicon
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2

from pipeline.config import Settings
from pipeline.feeds import FeedChannel, FeedItem, feed_guid, issue_guid, render_feeds
from pipeline.issue import Issue
from pipeline.render import date_text, issue_author
from pipeline.templates import WEB_TEMPLATES, WebTemplates, template_errors
from pipeline.webpage import LOGO, fill, signup_form, site_values, tag_path, tag_slug

FEED_SIZE = 20
"""How many of the newest issues the feeds carry."""
LOGO_SIZE = 144
SITEMAP_TEMPLATE = "sitemap.xml.j2"


@dataclass(frozen=True)
class ArchiveEntry:
    """A published issue as the archive and the feeds show it."""

    issue: Issue
    url: str
    published: datetime
    summary: str
    content_html: str | None
    """The feed item's HTML: only for the FEED_SIZE newest, the ones the feeds carry."""


@dataclass(frozen=True)
class _Tag:
    """A tag's page: the tag as its newest issue spells it, and its issues."""

    name: str
    url: str
    path: str
    entries: tuple[ArchiveEntry, ...]


def site_pages(
    settings: Settings, web: WebTemplates, entries: Sequence[ArchiveEntry]
) -> dict[str, bytes]:
    """The archive, the tag pages, the subscribe page, the 404 page, the feeds,
    the sitemap and robots.txt, by public path; ``entries`` are the published
    issues, newest first."""
    env = web.env
    values = site_values(settings)
    tags = _tags(settings, entries)
    topics = [{"name": tag.name, "url": tag.url} for tag in tags]
    pages = {
        "index.html": fill(
            env, "index.html.j2", values | {"issues": _listed(settings, entries), "tags": topics}
        ),
        "subscribe/index.html": fill(
            env, "subscribe.html.j2", values | {"signup_form": signup_form(settings)}
        ),
        "404.html": fill(env, "404.html.j2", values),
    }
    for tag in tags:
        listed = {
            "tag": {"name": tag.name, "url": tag.url},
            "issues": _listed(settings, tag.entries),
        }
        pages[tag.path] = fill(env, "tag.html.j2", values | listed)
    rss, atom = _feeds(settings, env, entries[:FEED_SIZE])
    pages |= {
        "feed.xml": rss,
        "feed.atom": atom,
        "sitemap.xml": _sitemap(settings, env, entries, tags),
        "robots.txt": f"User-agent: *\nAllow: /\n\nSitemap: {settings.url('sitemap.xml')}\n",
    }
    return {path: text.encode() for path, text in pages.items()}


def _listed(settings: Settings, entries: Iterable[ArchiveEntry]) -> list[dict[str, Any]]:
    """Issues as issue-list.html.j2 shows them."""
    return [
        {
            "title": entry.issue.title,
            "url": entry.url,
            "date": entry.issue.date,
            "date_text": date_text(entry.issue.date),
            "author": issue_author(entry.issue, settings),
            "summary": entry.summary,
        }
        for entry in entries
    ]


def _tags(settings: Settings, entries: Iterable[ArchiveEntry]) -> list[_Tag]:
    """Every tag of a published issue, by name, with its issues newest first.
    Spellings with one page (see :func:`~pipeline.webpage.tag_slug`) are one tag."""
    found: dict[str, tuple[str, list[ArchiveEntry]]] = {}
    for entry in entries:
        for tag in entry.issue.tags:
            tagged = found.setdefault(tag_slug(tag), (tag, []))[1]
            if not tagged or tagged[-1] is not entry:
                tagged.append(entry)
    return sorted(
        (
            _Tag(name, settings.url(tag_path(name)), tag_path(name) + "index.html", tuple(tagged))
            for name, tagged in found.values()
        ),
        key=lambda tag: (tag.name.casefold(), tag.name),
    )


def _sitemap(
    settings: Settings,
    env: jinja2.Environment,
    entries: Sequence[ArchiveEntry],
    tags: Iterable[_Tag],
) -> str:
    """Every page but the 404 page; a list's date is its newest issue's."""

    def day(entry: ArchiveEntry) -> date:
        return entry.published.astimezone(UTC).date()

    pages: list[dict[str, Any]] = [
        {"url": settings.url(""), "lastmod": day(entries[0]) if entries else None},
        {"url": settings.url("subscribe"), "lastmod": None},
        *({"url": entry.url, "lastmod": day(entry)} for entry in entries),
        *({"url": tag.url, "lastmod": day(tag.entries[0])} for tag in tags),
    ]
    return fill(env, SITEMAP_TEMPLATE, {"pages": pages})


def _feeds(
    settings: Settings, env: jinja2.Environment, entries: Iterable[ArchiveEntry]
) -> tuple[str, str]:
    items = [_feed_item(settings, entry) for entry in entries]
    channel = FeedChannel(
        title=settings.name,
        link=settings.url(""),
        description=settings.description or settings.name,
        language=settings.language,
        rss_url=settings.url("feed.xml"),
        atom_url=settings.url("feed.atom"),
        logo_url=settings.url(LOGO),
        logo_size=LOGO_SIZE,
        id=feed_guid(settings.name),
        author=settings.author or settings.name,
        author_email=settings.author_email,
        updated=max((item.published for item in items), default=None),
    )
    with template_errors(Path(WEB_TEMPLATES), "feed templates"):
        return render_feeds(env, channel, items)


def _feed_item(settings: Settings, entry: ArchiveEntry) -> FeedItem:
    issue = entry.issue
    assert entry.content_html is not None, "plan_site makes it for every issue in the feeds"
    author = issue_author(issue, settings)
    # An address is only the newsletter author's; anyone else is named without one.
    email = settings.author_email if author and author == settings.author else ""
    return FeedItem(
        title=issue.title,
        url=entry.url,
        guid=issue_guid(issue.date, issue.slug),
        published=entry.published,
        summary=entry.summary,
        content_html=entry.content_html,
        author=author,
        author_email=email,
        tags=issue.tags,
    )
