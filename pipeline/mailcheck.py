"""`publish check` for the service's own emails, confirm and welcome.

:func:`check_mail_templates` renders each with sample values and returns its
findings, each ``path:line: error: message`` at the template file (the
newsletter's, or the built-in one it falls back to):

* Jinja syntax errors and undefined values, at their line; MJML that does
  not compile; a tag naming no MJML element; no <mj-title> (the subject);
* confirm without its confirm link (``{{ slots.confirm_url }}``), welcome
  without its unsubscribe link (``{{ slots.unsubscribe_url }}``): in the
  MJML as a link, in the text as the URL;
* either without the postal address, in the MJML or the text.

The welcome is rendered with three sample issues and with none, as a new
newsletter's is. `publish serve` refuses to start on any of these
(:func:`require_mail_templates`), so no reader ever gets a message made
from a broken template.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from markupsafe import escape

from pipeline.config import Settings
from pipeline.errors import LocatedError, TemplateError
from pipeline.issue import Finding
from pipeline.mailtexts import (
    KINDS,
    LINK_SLOT,
    LatestIssue,
    MailTemplates,
    RenderedMail,
    load_mail_templates,
    render_mail,
    template_names,
)
from pipeline.mjml_elements import unknown_elements


def sample_latest(settings: Settings) -> tuple[LatestIssue, ...]:
    """Three made-up issues, for rendering the welcome as a reader gets it."""
    return tuple(
        LatestIssue(
            title=f"Sample issue {n}",
            preheader=f"The preheader of sample issue {n}.",
            url=settings.url(f"issues/sample-{n}/"),
            date=dt.date(2026, 12, 1) - dt.timedelta(days=14 * n),
        )
        for n in (1, 2, 3)
    )


def check_mail_templates(
    settings: Settings, templates: MailTemplates | None = None
) -> list[Finding]:
    """The findings for the confirm and welcome templates (read now unless
    ``templates`` is given), sorted by file and line."""
    try:
        templates = templates or load_mail_templates(settings)
    except LocatedError as exc:
        return [_finding(exc)]
    findings: list[Finding] = []
    for kind in KINDS:
        mjml_name, _ = template_names(kind)
        for line, message in unknown_elements(templates.source(mjml_name)):
            findings.append(Finding(templates.file(mjml_name), line, "error", message))
        for latest in (sample_latest(settings), ()) if kind == "welcome" else ((),):
            try:
                rendered = render_mail(kind, templates, settings, latest)
            except LocatedError as exc:
                findings.append(_finding(exc))
                break
            findings.extend(required_parts(rendered, settings))
    unique = list(dict.fromkeys(findings))
    unique.sort(key=lambda f: (str(f.path), f.line))
    return unique


def required_parts(rendered: RenderedMail, settings: Settings) -> list[Finding]:
    """What ``rendered`` lacks of what every such email must carry: its link
    (confirm, or unsubscribe) and the postal address, at the file lacking it."""
    out: list[Finding] = []
    slot = LINK_SLOT[rendered.kind]
    marker = rendered.slot(slot)
    what = "confirm link" if slot == "confirm_url" else "unsubscribe link"
    if f'href="{marker}"' not in rendered.html:
        message = f"no {what} ({{{{ slots.{slot} }}}} as a link's href)"
        out.append(Finding(rendered.mjml_file, 1, "error", message))
    if marker not in rendered.text:
        out.append(Finding(rendered.text_file, 1, "error", f"no {what} ({{{{ slots.{slot} }}}})"))
    address = settings.postal_address.splitlines()[0] if settings.postal_address else ""
    message = (
        "no postal address ({{ newsletter.postal_address }}); "
        "CAN-SPAM requires one in every message"
    )
    if address and str(escape(address)) not in rendered.html:
        out.append(Finding(rendered.mjml_file, 1, "error", message))
    if address and address not in rendered.text:
        out.append(Finding(rendered.text_file, 1, "error", message))
    return out


def require_mail_templates(settings: Settings) -> MailTemplates:
    """The templates, checked; :class:`TemplateError` naming the first error
    (and how many more there are) if any. For `publish serve`, before it
    starts anything."""
    templates = load_mail_templates(settings)
    errors = [f for f in check_mail_templates(settings, templates) if f.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more: publish check lists them)" if len(errors) > 1 else ""
        raise TemplateError(_within(first.path, settings.root), first.line, first.message + more)
    return templates


def _finding(exc: LocatedError) -> Finding:
    return Finding(exc.path, exc.line or 1, "error", exc.message)


def _within(path: Path, root: Path) -> Path:
    """``path`` relative to the newsletter's ``root`` when it is inside it."""
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path
