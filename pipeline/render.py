"""Issue → RenderedIssue: Jinja2 fills the MJML template, mjml-python compiles it.

Rendering happens once per issue. The parts that differ per recipient (the
unsubscribe URL, the first name in the greeting) are left as *slots*:
marker strings that personalization replaces later without touching MJML
again. A marker carries a nonce derived from the issue and templates, so no
text in an issue can forge one.

Three outputs come from the one body:

* ``html``: the email, responsive, with slots;
* ``text``: the plain-text part, with slots;
* ``web_html``: the issue's web page (``templates/web/issue.html.j2``, the
  body rendered for the web by :mod:`pipeline.webbody`) as it stands alone;
  the site makes it again from ``page`` with the issues around it.

Rendering is pure: it takes the command's :class:`~pipeline.context.Context`
and fills the templates loaded there, resolving the issue's links and images
against the index of issues/ made there, without opening a file.

    Issue + Context ─ parse_issue_body ─▶ Body (+ Resolver) ─ render_issue ─▶ RenderedIssue
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html as html_lib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import mjml
from markupsafe import Markup

from pipeline.body import Body, Figure, Reference, parse_body
from pipeline.config import Settings
from pipeline.context import Context
from pipeline.errors import IssueError, TemplateError
from pipeline.greeting import greeting_line
from pipeline.issue import Issue, IssueBody
from pipeline.links import Asset, Resolver
from pipeline.plaintext import TextWriter
from pipeline.templates import EMAIL_TEMPLATE, TEXT_TEMPLATE, template_errors
from pipeline.webbody import web_article
from pipeline.webpage import IssuePage, issue_page

SLOT_NAMES = ("unsubscribe_url", "first_name")


@dataclass(frozen=True)
class RenderedIssue:
    """An issue rendered once, ready to publish and personalize."""

    issue: Issue
    subject: str
    preheader: str
    html: str
    text: str
    web_html: str
    web_url: str
    assets: tuple[Asset, ...]
    references: tuple[Reference, ...]
    excerpt: str
    nonce: str
    body: Body = field(repr=False, compare=False)
    """The parsed body it was rendered from (the site's feeds use it)."""
    page: IssuePage = field(repr=False, compare=False)
    """Its web page, but for the issues around it (the site adds them)."""

    def slot(self, name: str) -> str:
        """The marker standing for slot ``name`` in ``html`` and ``text``."""
        return slot_marker(self.nonce, name)

    def fill(self, values: Mapping[str, str]) -> tuple[str, str]:
        """(html, text) with every slot replaced; HTML values are escaped."""
        html, text = self.html, self.text
        for name in SLOT_NAMES:
            marker = self.slot(name)
            value = values.get(name, "")
            html = html.replace(marker, html_lib.escape(value, quote=True))
            text = text.replace(marker, value)
        return html, text


def slot_marker(nonce: str, name: str) -> str:
    return f"pflslot{nonce}{name.replace('_', '')}x"


def issue_path_url(settings: Settings, slug: str) -> str:
    """The stable URL of an issue's web page (the view-in-browser link)."""
    return settings.url(f"issues/{slug}/")


def issue_resolver(context: Context, issue: Issue | IssueBody) -> Resolver:
    """The resolver that maps an issue's relative targets onto the site: files
    from the context's index, other issues' slugs as the context read them."""
    settings, issues = context.settings, context.issues

    def other_issue_url(path: Path) -> str:
        return issue_path_url(settings, issues.slug_of(path))

    return Resolver(issue.path, issues.files, settings.site_url, other_issue_url)


def parse_issue_body(issue: Issue | IssueBody, context: Context) -> tuple[Body, Resolver]:
    """The issue's body (or a body whose front matter is broken) parsed
    against the site's URLs."""
    markdown = issue.markdown if isinstance(issue, Issue) else issue
    resolver = issue_resolver(context, markdown)
    return parse_body(markdown.text, resolver, markdown.first_line), resolver


def render_issue(
    issue: Issue, context: Context, parsed: tuple[Body, Resolver] | None = None
) -> RenderedIssue:
    """Render ``issue`` to email HTML, plain text and its web page, from the
    context's templates and index alone (``parsed``: its body, if parsed
    already by :func:`parse_issue_body`).

    Raises :class:`IssueError` for a relative link or image with no file
    behind it (an email must never carry a relative URL), and
    :class:`TemplateError` for a template that does not compile or names an
    element MJML does not have.
    """
    settings = context.settings
    body, resolver = parsed or parse_issue_body(issue, context)
    for ref in body.references:
        if resolver.is_relative(ref.target) and resolver.local_file(ref.target) is None:
            what = "image" if ref.kind == "image" else "link target"
            problem = resolver.problem(ref.target)
            why = f"is not a file name: {problem}" if problem else "not found"
            raise IssueError(issue.path, ref.line, f"{what} {ref.target!r} {why}")

    loaded = context.templates
    if loaded.unknown_mjml:
        first = loaded.unknown_mjml[0]
        raise TemplateError(first.path, first.line, first.message)
    env, folder = loaded.env, loaded.folder
    nonce = hashlib.sha256(issue.source.encode() + loaded.digest).hexdigest()[:12]
    web_url = issue_path_url(settings, issue.slug)

    text_writer = TextWriter()
    text_parts = {
        "article": text_writer.render(body.article_tokens),
        "sign_off": text_writer.render(body.sign_off_tokens),
        "postscript": text_writer.render(body.postscript_tokens),
    }
    values = _values(settings, issue, body, web_url)
    email_slots = {name: slot_marker(nonce, name) for name in SLOT_NAMES}
    # The greeting around the name is filled in here, once: only the name is a slot.
    greeting = greeting_line(issue_greeting(issue, settings), email_slots["first_name"])
    email: dict[str, Any] = {"web": False, "slots": email_slots, "greeting": greeting}

    html = _compile(env, values | email, folder)
    page = issue_page(settings, values["issue"], web_url, web_article(body, resolver))
    web_html = page.html(context.web)
    text = _fill(
        env,
        TEXT_TEMPLATE,
        values | email | {"text": text_parts, "references": text_writer.references()},
        folder,
    )
    return RenderedIssue(
        issue=issue,
        subject=issue.subject,
        preheader=issue.preheader,
        html=html,
        text=text,
        web_html=web_html,
        web_url=web_url,
        assets=body.assets,
        references=body.references,
        excerpt=body.excerpt,
        nonce=nonce,
        body=body,
        page=page,
    )


def date_text(day: dt.date) -> str:
    """``December 1, 2026``: an issue's date as pages and emails show it."""
    return f"{day:%B} {day.day}, {day.year}"


def issue_author(issue: Issue, settings: Settings) -> str:
    """Who wrote the issue: its own author, or the newsletter's."""
    return issue.author or settings.author


def issue_greeting(issue: Issue, settings: Settings) -> str:
    """The issue's greeting format: its own, or the newsletter's; "" for none."""
    return settings.greeting if issue.greeting is None else issue.greeting


def _values(settings: Settings, issue: Issue, body: Body, web_url: str) -> dict[str, Any]:
    """What the templates are filled with."""
    # The HTML pieces come from markdown-it with raw HTML disabled, so every
    # character of the editor's text is already escaped in them.
    article = [
        {"figure": block, "html": None}
        if isinstance(block, Figure)
        else {"figure": None, "html": Markup(block.html)}  # noqa: S704
        for block in body.article
    ]
    return {
        "newsletter": newsletter_values(settings),
        "issue": {
            "title": issue.title,
            "subject": issue.subject,
            "preheader": issue.preheader or body.excerpt,
            "date": issue.date,
            "date_text": date_text(issue.date),
            "author": issue_author(issue, settings),
            "tags": issue.tags,
            "slug": issue.slug,
        },
        "article": article,
        "sign_off": Markup(body.sign_off),  # noqa: S704
        "postscript": Markup(body.postscript),  # noqa: S704
        "urls": {"web": web_url, **site_urls(settings)},
    }


def newsletter_values(settings: Settings) -> dict[str, Any]:
    """``newsletter`` in every email template: an issue's, confirm, welcome."""
    return {
        "name": settings.name,
        "description": settings.description,
        "site_url": settings.site_url,
        "site_host": settings.site_host,
        "language": settings.language,
        "postal_address": settings.postal_address,
        "forum_url": settings.forum_url,
        "blog_url": settings.blog_url,
        "sender_name": settings.sender.name or settings.name,
        "reply_to": settings.reply_to.email,
        "greeting_fallback": settings.greeting_fallback,
    }


def site_urls(settings: Settings) -> dict[str, str]:
    """The site's addresses every email template links to (``urls``)."""
    return {
        "archive": settings.url(""),
        "subscribe": settings.url("subscribe"),
        "feed": settings.url("feed.xml"),
        "forum": settings.forum_url,
        "blog": settings.blog_url,
    }


def _fill(env: jinja2.Environment, name: str, values: dict[str, Any], folder: Path) -> str:
    with template_errors(folder, name):
        return env.get_template(name).render(values)


def _compile(env: jinja2.Environment, values: dict[str, Any], folder: Path) -> str:
    source = _fill(env, EMAIL_TEMPLATE, values, folder)
    try:
        return str(mjml.mjml2html(source, disable_comments=True))
    except ValueError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "does not compile"
        raise TemplateError(folder / EMAIL_TEMPLATE, None, f"MJML: {message}") from None


def sample_values(settings: Settings) -> dict[str, str]:
    """Slot values for a preview: a sample reader, a harmless unsubscribe link."""
    return {
        "unsubscribe_url": settings.url("unsubscribe/preview"),
        "first_name": "Alex",
    }
