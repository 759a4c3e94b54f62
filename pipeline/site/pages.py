"""The site's own pages and feeds, made from the archive's entries.

Every build makes these afresh (they are cheap: no MJML), from the web
templates in templates/web/ (the newsletter's, else the packaged copy), which
the command's context read into memory (:class:`~pipeline.templates.WebTemplates`):

    ArchiveEntry* ─┬─ index.html.j2      ─▶ index.html             the archive, newest first
                   ├─ feed.xml.j2 / .atom ─▶ feed.xml, feed.atom    the FEED_SIZE newest
    Settings ──────┼─ subscribe.html.j2  ─▶ subscribe/index.html   with the signup form
                   └─ 404.html.j2        ─▶ 404.html
    templates/web/static/* ─────────────▶ static/*                 the logo and friends
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.config import Settings
from pipeline.feeds import FeedChannel, FeedItem, feed_guid, issue_guid, render_feeds
from pipeline.issue import Issue
from pipeline.render import date_text, issue_author
from pipeline.templates import WEB_TEMPLATES, WebTemplates, template_errors

FEED_SIZE = 20
"""How many of the newest issues the feeds carry."""
LOGO = "static/logo.png"
LOGO_SIZE = 144


@dataclass(frozen=True)
class ArchiveEntry:
    """A published issue as the archive and the feeds show it."""

    issue: Issue
    url: str
    published: datetime
    summary: str
    content_html: str | None
    """The feed item's HTML: only for the FEED_SIZE newest, the ones the feeds carry."""


def site_pages(
    settings: Settings, web: WebTemplates, entries: Sequence[ArchiveEntry]
) -> dict[str, bytes]:
    """The archive, the subscribe page, the 404 page and the feeds, by public
    path; ``entries`` are the published issues, newest first."""
    env = web.env
    context = _site_context(settings)
    archive = [
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
    pages = {
        "index.html": _fill(env, "index.html.j2", context | {"issues": archive}).encode(),
        "subscribe/index.html": _fill(
            env, "subscribe.html.j2", context | {"signup_form": signup_form(settings)}
        ).encode(),
        "404.html": _fill(env, "404.html.j2", context).encode(),
    }
    rss, atom = _feeds(settings, env, entries[:FEED_SIZE])
    return pages | {"feed.xml": rss.encode(), "feed.atom": atom.encode()}


def _fill(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    with template_errors(Path(WEB_TEMPLATES), name):
        return env.get_template(name).render(context)


def _site_context(settings: Settings) -> dict[str, Any]:
    return {
        "newsletter": {
            "name": settings.name,
            "description": settings.description,
            "language": settings.language,
            "postal_address": settings.postal_address,
            "site_url": settings.site_url,
        },
        "urls": {
            "archive": settings.url(""),
            "subscribe": settings.url("subscribe"),
            "feed": settings.url("feed.xml"),
            "atom": settings.url("feed.atom"),
            "logo": settings.url(LOGO),
            "forum": settings.forum_url,
            "blog": settings.blog_url,
        },
    }


def signup_form(settings: Settings) -> Markup:
    """The signup form's markup, as the subscribers package writes it, with the
    consent wording the signup service records."""
    from subscribers.models import consent_wording
    from subscribers.web import signup_form_html

    form = signup_form_html(
        action_url=settings.url("subscribe"),
        consent_text=consent_wording(settings.name, settings.consent_text),
    )
    return Markup(form)  # noqa: S704 - built and escaped by subscribers.web


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
