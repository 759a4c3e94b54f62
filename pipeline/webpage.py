"""An issue's web page, and what every page of the site is filled with.

Every page of the site is a template in templates/web/ that extends
``base.html.j2``; :func:`site_values` is what they all get: the newsletter
and the site's addresses. An issue's page is ``issue.html.j2``, filled with
the issue as rendering shows it, its body rendered for the web
(:mod:`pipeline.webbody`), the signup form, and the issues around it:

    issue values + WebArticle + Settings ─ issue_page ─▶ IssuePage     (in render_issue)
    IssuePage.html(web templates, Neighbours) ─▶ the page's HTML
        no neighbours: the page as it stands alone (RenderedIssue.web_html)
        the site's: the previous and next issue, the three latest others

Rendering an issue knows nothing of the other issues on the site; the site
does, so it hands each page its :class:`Neighbours`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.config import Settings
from pipeline.templates import WEB_TEMPLATES, WebTemplates, template_errors
from pipeline.webbody import WebArticle
from subscribers.provenance import ISSUE_PAGE

ISSUE_TEMPLATE = "issue.html.j2"
LOGO = "static/logo.png"
FAVICON = "static/favicon.svg"
LATEST = 3
"""How many of the latest issues an issue's page offers under "More issues"."""


def site_values(settings: Settings) -> dict[str, Any]:
    """The newsletter and the site's addresses, for every page's template."""
    return {
        "newsletter": {
            "name": settings.name,
            "description": settings.description,
            "language": settings.language,
            "postal_address": settings.postal_address,
            "site_url": settings.site_url,
            "site_host": settings.site_host,
        },
        "urls": {
            "archive": settings.url(""),
            "subscribe": settings.url("subscribe"),
            "feed": settings.url("feed.xml"),
            "atom": settings.url("feed.atom"),
            "logo": settings.url(LOGO),
            "favicon": settings.url(FAVICON),
            "forum": settings.forum_url,
            "blog": settings.blog_url,
        },
    }


def signup_form(settings: Settings, source: str = "") -> Markup:
    """The signup form's markup, as the subscribers package writes it, with the
    consent wording the signup service records; ``source`` names the page it
    is on for the consent record (none: the signup page)."""
    # The form and its wording alone: not the store's records nor the service's pages.
    from subscribers.consent import consent_wording
    from subscribers.page_loader import signup_form_html

    form = signup_form_html(
        action_url=settings.url("subscribe"),
        consent_text=consent_wording(settings.name, settings.consent_text),
        source=source,
    )
    return Markup(form)  # noqa: S704 - built and escaped by subscribers.page_loader


def tag_slug(tag: str) -> str:
    """The name of a tag's page: its words in lowercase ASCII joined by
    hyphens (``Desk work`` → ``desk-work``); for a tag with no such letters,
    a hash of it. Tags that differ only in case or punctuation share a page."""
    folded = unicodedata.normalize("NFKD", tag).encode("ascii", "ignore").decode().lower()
    words = "-".join(re.findall(r"[a-z0-9]+", folded))[:80].strip("-")
    return words or "tag-" + hashlib.sha256(tag.casefold().encode()).hexdigest()[:10]


def tag_path(tag: str) -> str:
    """Where a tag's page is on the site: ``tags/<slug>/``."""
    return f"tags/{tag_slug(tag)}/"


def fill(env: jinja2.Environment, name: str, values: Mapping[str, Any]) -> str:
    """Web template ``name`` filled with ``values``; Jinja's errors as TemplateErrors."""
    with template_errors(Path(WEB_TEMPLATES), name):
        return env.get_template(name).render(values)


@dataclass(frozen=True)
class IssueLink:
    """Another issue, as an issue's page links to it."""

    title: str
    url: str
    date: date
    date_text: str


@dataclass(frozen=True)
class Neighbours:
    """The issues an issue's page links to besides those its text does."""

    previous: IssueLink | None = None
    """The issue published before it."""
    next: IssueLink | None = None
    """The issue published after it."""
    latest: tuple[IssueLink, ...] = ()
    """The :data:`LATEST` newest issues other than itself, newest first."""


NO_NEIGHBOURS = Neighbours()


@dataclass(frozen=True)
class IssuePage:
    """An issue's page, all but its neighbours: the values its template gets."""

    values: Mapping[str, Any] = field(repr=False)

    def html(self, web: WebTemplates, around: Neighbours = NO_NEIGHBOURS) -> str:
        """The page, linking to the issues ``around`` it."""
        values = {
            **self.values,
            "previous": around.previous,
            "next": around.next,
            "latest": around.latest,
        }
        return fill(web.env, ISSUE_TEMPLATE, values)


def issue_page(
    settings: Settings, issue: Mapping[str, Any], url: str, article: WebArticle
) -> IssuePage:
    """The page of the issue rendering shows as ``issue`` (its title, date,
    author, tags...), at ``url``, with ``article`` for its body."""
    values = site_values(settings)
    values["urls"]["page"] = url
    # The HTML pieces come from markdown-it with raw HTML disabled, so every
    # character of the editor's text is already escaped in them.
    return IssuePage(
        values
        | {
            "issue": issue,
            "tags": [{"name": tag, "url": settings.url(tag_path(tag))} for tag in issue["tags"]],
            "picture": {"url": article.picture, "alt": article.picture_alt},
            "article": Markup(article.article.rstrip("\n")),  # noqa: S704
            "sign_off": Markup(article.sign_off.rstrip("\n")),  # noqa: S704
            "postscript": Markup(article.postscript.rstrip("\n")),  # noqa: S704
            "signup_form": signup_form(settings, ISSUE_PAGE),
        }
    )
