"""`publish preview --mail confirm|welcome`: one of the service's emails as
a sample reader gets it, written beside the issue previews.

    templates ─ render_mail (the latest issues from the ledger) ─ checked
              ─ filled with a sample reader and links ─▶ preview/NAME.html, NAME.txt

A template in error is a :class:`TemplateError` at its file and line (the
first of what `publish check` lists), and nothing is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import PublishError, TemplateError
from pipeline.mailcheck import required_parts
from pipeline.mailtexts import KINDS, LatestIssue, load_mail_templates, render_mail, sample_values
from pipeline.service_mail import latest_issues
from subscribers.files import write_atomic


def write_mail_preview(
    settings: Settings, kind: str, folder: Path, latest: tuple[LatestIssue, ...] | None = None
) -> tuple[Path, Path]:
    """Write the ``kind`` email to ``folder``/KIND.html and KIND.txt; the
    welcome lists ``latest``, by default the latest issues as the ledger and
    issues/ have them now."""
    if kind not in KINDS:
        raise PublishError(f"--mail: {kind!r} is not one of the emails; choose confirm or welcome")
    templates = load_mail_templates(settings)
    if latest is None:
        latest = published_now(settings) if kind == "welcome" else ()
    try:
        rendered = render_mail(kind, templates, settings, latest)
    except TemplateError as exc:
        raise TemplateError(_within(exc.path, settings.root), exc.line, exc.message) from None
    missing = required_parts(rendered, settings)
    if missing:
        first = missing[0]
        raise TemplateError(_within(first.path, settings.root), first.line, first.message)
    html, text = rendered.fill(sample_values(settings))
    html_path, text_path = folder / f"{kind}.html", folder / f"{kind}.txt"
    write_atomic(html_path, html)
    write_atomic(text_path, text)
    return html_path, text_path


def published_now(settings: Settings) -> tuple[LatestIssue, ...]:
    """The latest issues as a welcome sent now would list them."""
    from subscribers.db import connect
    from subscribers.ledger import sent_issue_times

    engine = connect(settings.database_url, settings.root)
    try:
        sent = sent_issue_times(engine)
    finally:
        engine.dispose()
    return latest_issues(settings, sent, dt.datetime.now(dt.UTC)).issues


def _within(path: Path, root: Path) -> Path:
    """``path`` relative to the newsletter's ``root`` when it is inside it."""
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path
