"""The service's own emails, confirm and welcome, rendered from their templates.

    templates/confirm.mjml.j2  confirm.txt.j2   the newsletter's own, each one it
    templates/welcome.mjml.j2  welcome.txt.j2   has; else pipeline/default_templates/'s
        ─ load_mail_templates ─▶ MailTemplates   read once: a Jinja environment,
                                                 the file behind each name
        ─ render_mail(kind, ..., latest) ─▶ RenderedMail
              subject  the <mj-title>          html  MJML compiled by mjml-python
              text     the plain-text part     both with slot markers

They take the issues' path: Jinja2 fills them in the email templates'
environment (:func:`pipeline.templates.email_environment`: undefined values
are errors, everything but the ``.txt.j2`` part autoescaped), mjml-python
compiles the MJML, and what differs per reader is left as a slot marker
(:func:`pipeline.render.slot_marker`), so that each message is built once
and filled per recipient. The slots are ``slots.confirm_url`` in confirm,
``slots.first_name`` and ``slots.unsubscribe_url`` in welcome. Their other
values: ``newsletter`` (name, description, site_url, site_host, language,
postal_address, reply_to, sender_name, forum_url, blog_url), ``urls``
(archive, subscribe, feed, forum, blog) and ``latest``, the latest issues
(up to three, newest first; each with title, preheader, url, date and
date_text).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html as html_lib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import mjml

from pipeline.config import Settings
from pipeline.errors import TemplateError
from pipeline.render import date_text, newsletter_values, site_urls, slot_marker
from pipeline.templates import email_environment, read_sources
from subscribers.text import one_line

KINDS = ("confirm", "welcome")
SLOTS = {"confirm": ("confirm_url",), "welcome": ("first_name", "unsubscribe_url")}
"""The slots of each email: filled for each reader when it is sent."""
LINK_SLOT = {"confirm": "confirm_url", "welcome": "unsubscribe_url"}
"""The link each email must carry: the confirm link, the unsubscribe link."""
DEFAULT_TEMPLATES = Path(__file__).parent / "default_templates"
"""The built-in templates, for each one the newsletter's templates/ lacks."""
LATEST = 3
"""How many of the latest issues the welcome lists."""

_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


def template_names(kind: str) -> tuple[str, str]:
    """The MJML template and the plain-text template of ``kind``."""
    return f"{kind}.mjml.j2", f"{kind}.txt.j2"


@dataclass(frozen=True)
class LatestIssue:
    """One of the latest issues, as the welcome lists it."""

    title: str
    preheader: str
    url: str
    date: dt.date

    @property
    def date_text(self) -> str:
        return date_text(self.date)


@dataclass(frozen=True)
class MailTemplates:
    """The confirm and welcome templates as read, with what they may include."""

    env: jinja2.Environment
    files: Mapping[str, Path]
    """Every template by name: the file it was read from."""
    digest: bytes
    """Of every template's name and text (part of each slot nonce)."""

    def file(self, name: str) -> Path:
        return self.files[name]

    def source(self, name: str) -> str:
        """The text of template ``name``, as read."""
        loader = self.env.loader
        assert loader is not None
        return loader.get_source(self.env, name)[0]


def load_mail_templates(settings: Settings) -> MailTemplates:
    """Read the templates: those directly in the newsletter's templates/ (so
    that its confirm and welcome may include the others there), and the
    built-in ones where it has none of that name. :class:`TemplateError` for
    a file that cannot be read."""
    sources: dict[str, tuple[str, str]] = {}
    if settings.templates_dir.is_dir():
        sources.update(read_sources(settings.templates_dir, nested=False))
    for name, source in read_sources(DEFAULT_TEMPLATES).items():
        sources.setdefault(name, source)
    digest = hashlib.sha256()
    for name, (text, _) in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + text.encode("utf-8"))
    return MailTemplates(
        env=email_environment(sources, settings),
        files={name: Path(filename) for name, (_, filename) in sources.items()},
        digest=digest.digest(),
    )


@dataclass(frozen=True)
class RenderedMail:
    """One of the service's emails rendered once, its slots left as markers."""

    kind: str
    subject: str
    html: str
    text: str
    nonce: str
    mjml_file: Path
    text_file: Path

    def slot(self, name: str) -> str:
        """The marker standing for slot ``name`` in ``html`` and ``text``."""
        return slot_marker(self.nonce, name)

    @property
    def markers(self) -> dict[str, str]:
        return {name: self.slot(name) for name in SLOTS[self.kind]}

    def fill(self, values: Mapping[str, str]) -> tuple[str, str]:
        """(html, text) with every slot replaced; HTML values are escaped."""
        html, text = self.html, self.text
        for name, marker in self.markers.items():
            value = values.get(name, "")
            html = html.replace(marker, html_lib.escape(value, quote=True))
            text = text.replace(marker, value)
        return html, text


def mail_values(settings: Settings, latest: Sequence[LatestIssue]) -> dict[str, Any]:
    """What the confirm and welcome templates are filled with, but the slots."""
    return {
        "newsletter": newsletter_values(settings),
        "urls": site_urls(settings),
        "latest": [
            {
                "title": issue.title,
                "preheader": issue.preheader,
                "url": issue.url,
                "date": issue.date,
                "date_text": issue.date_text,
            }
            for issue in latest[:LATEST]
        ],
    }


def render_mail(
    kind: str, templates: MailTemplates, settings: Settings, latest: Sequence[LatestIssue] = ()
) -> RenderedMail:
    """Render the ``kind`` email ("confirm" or "welcome") for ``latest``.

    Raises :class:`TemplateError` at the template's file and line for a
    Jinja error (syntax, an undefined value), MJML that does not compile,
    and an MJML template without a <mj-title> (the subject)."""
    mjml_name, text_name = template_names(kind)
    seed = templates.digest + repr((kind, settings.site_url, list(latest))).encode()
    nonce = hashlib.sha256(seed).hexdigest()[:12]
    values = mail_values(settings, latest)
    values["slots"] = {name: slot_marker(nonce, name) for name in SLOTS[kind]}
    mjml_file = templates.file(mjml_name)
    source = _fill(templates, mjml_name, values)
    try:
        html = str(mjml.mjml2html(source, disable_comments=True))
    except ValueError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "does not compile"
        raise TemplateError(mjml_file, None, f"MJML: {message}") from None
    found = _TITLE.search(html)
    subject = one_line(html_lib.unescape(found.group(1))) if found else ""
    if not subject:
        line = _line_of(templates.source(mjml_name), "<mj-head")
        raise TemplateError(mjml_file, line, "no <mj-title>: it is the subject")
    return RenderedMail(
        kind=kind,
        subject=subject,
        html=html,
        text=_fill(templates, text_name, values),
        nonce=nonce,
        mjml_file=mjml_file,
        text_file=templates.file(text_name),
    )


def sample_values(settings: Settings) -> dict[str, str]:
    """Slot values for a preview: a sample reader and links that go nowhere harmful."""
    return {
        "first_name": "Alex",
        "confirm_url": settings.url("confirm/preview"),
        "unsubscribe_url": settings.url("unsubscribe/preview"),
    }


def _fill(templates: MailTemplates, name: str, values: dict[str, Any]) -> str:
    """Template ``name`` filled in; Jinja's errors as a TemplateError at the
    file and, where it can be told, the line."""
    path = templates.files.get(name, DEFAULT_TEMPLATES / name)
    try:
        return templates.env.get_template(name).render(values)
    except jinja2.TemplateSyntaxError as exc:
        where = Path(exc.filename) if exc.filename else path
        raise TemplateError(where, exc.lineno, exc.message or "syntax error") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(path, None, f"template {exc.name!r} not found") from None
    except jinja2.TemplateError as exc:  # an undefined value, a filter's error
        where, line = _template_frame(exc.__traceback__, templates.files) or (path, None)
        raise TemplateError(where, line, exc.message or "cannot be filled in") from None


def _template_frame(
    traceback: TracebackType | None, files: Mapping[str, Path]
) -> tuple[Path, int] | None:
    """The innermost frame of ``traceback`` in a template file, and its line:
    Jinja gives a template's frames the file and line of the template."""
    known = {str(path) for path in files.values()}
    found = None
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code.co_filename in known:
            found = (Path(code.co_filename), traceback.tb_lineno)
        traceback = traceback.tb_next
    return found


def _line_of(text: str, needle: str) -> int | None:
    """The number of the first line of ``text`` that holds ``needle``."""
    lines = text.splitlines()
    return next((number for number, line in enumerate(lines, 1) if needle in line), None)
