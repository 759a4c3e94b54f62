"""Issue → RenderedIssue: Jinja2 fills the MJML template, mjml-python compiles it.

Rendering happens once per issue. The parts that differ per recipient (the
unsubscribe URL, the first name in the greeting) are left as *slots*:
marker strings that personalization replaces later without touching MJML
again. A marker carries a nonce derived from the issue and templates, so no
text in an issue can forge one.

Three outputs come from the one body:

* ``html``: the email, responsive, with slots;
* ``text``: the plain-text part, with slots;
* ``web_html``: the archive page, the same email without personal parts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html as html_lib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.body import Asset, Body, Figure, Reference, Resolver, parse_body
from pipeline.config import Settings
from pipeline.errors import IssueError, TemplateError
from pipeline.issue import Finding, Issue, IssueBody, default_slug, read_issue
from pipeline.mjml_elements import unknown_elements
from pipeline.plaintext import TextWriter, underline

EMAIL_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
SLOT_NAMES = ("unsubscribe_url", "first_name")
PACKAGED_TEMPLATES = Path(__file__).parent / "_templates"


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


def templates_dir(settings: Settings) -> Path:
    """The newsletter's templates/, or the copy shipped with the package."""
    if (settings.templates_dir / EMAIL_TEMPLATE).is_file():
        return settings.templates_dir
    for fallback in (PACKAGED_TEMPLATES, Path(__file__).parent.parent / "templates"):
        if (fallback / EMAIL_TEMPLATE).is_file():
            return fallback
    raise TemplateError(settings.templates_dir / EMAIL_TEMPLATE, None, "template not found")


@dataclass(frozen=True)
class Templates:
    """The email templates as loaded: their Jinja environment and a digest of
    their sources (part of every slot nonce)."""

    folder: Path
    env: jinja2.Environment
    digest: bytes
    unknown_mjml: tuple[Finding, ...] = ()
    """A tag naming no MJML element in the email template (or one it
    includes), which MRML would pass through silently; each is an error."""


def templates(settings: Settings) -> Templates:
    """The email templates, loaded once per process and again only after an edit."""
    folder = templates_dir(settings)
    stamps = tuple((path, path.stat().st_mtime_ns) for path in sorted(folder.rglob("*.j2")))
    return _load_templates(folder, stamps)


def jinja_environment(
    loader: jinja2.BaseLoader,
    autoescape: bool | Callable[[str | None], bool],
    filters: Mapping[str, Callable[..., Any]],
) -> jinja2.Environment:
    """The Jinja environment every template here is filled in: undefined
    values are errors, block tags leave no blank lines, a template's final
    newline is kept."""
    env = jinja2.Environment(
        loader=loader,
        autoescape=autoescape,  # noqa: S701 - True or select_autoescape, by each caller
        undefined=jinja2.StrictUndefined,
        # Compiled templates are cached in the temp folder between runs,
        # keyed by the template's source, so `publish check` starts fast.
        bytecode_cache=jinja2.FileSystemBytecodeCache(),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters)
    return env


@lru_cache(maxsize=8)
def _load_templates(folder: Path, stamps: tuple[tuple[Path, int], ...]) -> Templates:
    env = jinja_environment(
        jinja2.FileSystemLoader(folder),
        # Every template is autoescaped except the plain-text part.
        jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2", "xml.j2"),
            disabled_extensions=("txt.j2",),
            default_for_string=True,
            default=True,
        ),
        {"underline": underline},
    )
    digest = hashlib.sha256()
    for path, _ in stamps:
        # Names too: moving text from one template into the next is a change.
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return Templates(folder, env, digest.digest(), _unknown_mjml(env, folder))


def _unknown_mjml(env: jinja2.Environment, folder: Path) -> tuple[Finding, ...]:
    """The unknown MJML elements of the email template and of every template
    it includes, imports or extends, each at its file and line."""
    from jinja2 import meta

    loader = env.loader
    assert loader is not None
    found: list[Finding] = []
    pending, seen = [EMAIL_TEMPLATE], set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        try:
            source, filename, _ = loader.get_source(env, name)
            names = meta.find_referenced_templates(env.parse(source))
        except jinja2.TemplateError:
            continue  # rendering reports it, located
        path = Path(filename) if filename else folder / name
        found.extend(Finding(path, line, "error", text) for line, text in unknown_elements(source))
        pending.extend(other for other in names if other)
    return tuple(found)


@contextmanager
def template_errors(folder: Path, name: str) -> Iterator[None]:
    """Jinja's errors while rendering ``name`` as one-line TemplateErrors
    naming the template file (in ``folder``) and, where Jinja knows it, the line."""
    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or str(folder / name)
        raise TemplateError(where, exc.lineno, exc.message or "syntax error") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(folder / str(exc.name), None, "template not found") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(folder / name, None, exc.message or "undefined value") from None


def issue_resolver(settings: Settings, issue: Issue | IssueBody) -> Resolver:
    """The resolver that maps an issue's relative targets onto the site."""

    def other_issue_url(path: Path) -> str:
        other, _ = read_issue(path)
        return issue_path_url(settings, other.slug if other else default_slug(path))

    return Resolver(issue.path, settings.issues_dir, settings.site_url, other_issue_url)


def parse_issue_body(issue: Issue | IssueBody, settings: Settings) -> tuple[Body, Resolver]:
    """The issue's body (or a body whose front matter is broken) parsed
    against the site's URLs."""
    markdown = issue.markdown if isinstance(issue, Issue) else issue
    resolver = issue_resolver(settings, markdown)
    return parse_body(markdown.text, resolver, markdown.first_line), resolver


def render_issue(
    issue: Issue, settings: Settings, parsed: tuple[Body, Resolver] | None = None
) -> RenderedIssue:
    """Render ``issue`` to email HTML, plain text and its web page.

    Raises :class:`IssueError` for a relative link or image with no file
    behind it (an email must never carry a relative URL), and
    :class:`TemplateError` for a template that does not compile or names an
    element MJML does not have.
    """
    body, resolver = parsed or parse_issue_body(issue, settings)
    for ref in body.references:
        if resolver.is_relative(ref.target) and resolver.local_file(ref.target) is None:
            what = "image" if ref.kind == "image" else "link target"
            problem = resolver.problem(ref.target)
            why = f"is not a file name: {problem}" if problem else "not found"
            raise IssueError(issue.path, ref.line, f"{what} {ref.target!r} {why}")

    loaded = templates(settings)
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
    context = _context(settings, issue, body, web_url)
    email_slots = {name: slot_marker(nonce, name) for name in SLOT_NAMES}

    html = _compile(env, context | {"web": False, "slots": email_slots}, folder)
    web_html = _compile(env, context | {"web": True, "slots": {}}, folder)
    text = _fill(
        env,
        TEXT_TEMPLATE,
        context
        | {
            "web": False,
            "slots": email_slots,
            "text": text_parts,
            "references": text_writer.references(),
        },
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
    )


def date_text(day: dt.date) -> str:
    """``December 1, 2026``: an issue's date as pages and emails show it."""
    return f"{day:%B} {day.day}, {day.year}"


def issue_author(issue: Issue, settings: Settings) -> str:
    """Who wrote the issue: its own author, or the newsletter's."""
    return issue.author or settings.author


def _context(settings: Settings, issue: Issue, body: Body, web_url: str) -> dict[str, Any]:
    # The HTML pieces come from markdown-it with raw HTML disabled, so every
    # character of the editor's text is already escaped in them.
    article = [
        {"figure": block, "html": None}
        if isinstance(block, Figure)
        else {"figure": None, "html": Markup(block.html)}  # noqa: S704
        for block in body.article
    ]
    return {
        "newsletter": {
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
        },
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
        "urls": {
            "web": web_url,
            "archive": settings.url(""),
            "subscribe": settings.url("subscribe"),
            "feed": settings.url("feed.xml"),
            "forum": settings.forum_url,
            "blog": settings.blog_url,
        },
    }


def _fill(env: jinja2.Environment, name: str, context: dict[str, Any], folder: Path) -> str:
    with template_errors(folder, name):
        return env.get_template(name).render(context)


def _compile(env: jinja2.Environment, context: dict[str, Any], folder: Path) -> str:
    import mjml

    source = _fill(env, EMAIL_TEMPLATE, context, folder)
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
