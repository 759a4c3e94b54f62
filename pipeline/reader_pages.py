"""The web service's reader-facing pages as the newsletter's settings make them.

The pages are the subscribers package's (:mod:`subscribers.pages`); what
they are made of comes from here, as plain data: the folders their
templates are looked up in (the newsletter's templates/web, then the
site's) and the values of the site's layout::

    Settings ─ page_settings ──────▶ WebConfig's template_dirs and layout (publish serve)
             ─ check_pages ────────▶ [Finding]   pages/NAME.html.j2:LINE: error: ... (publish check)
             ─ refuse_broken_pages ▶ TemplateError, the first of them (publish serve)
             ─ write_page_preview ─▶ preview/page-NAME.html (publish preview --page)

A page is checked as the service would answer with it, filled with sample
values (:mod:`subscribers.page_check`): a template that does not render, or
a page without what it must show, is an error at its file and line.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.errors import PublishError, TemplateError
from pipeline.issue import Finding
from pipeline.templates import CACHE as TEMPLATE_CACHE
from pipeline.templates import web_template_dirs
from pipeline.webpage import site_values
from subscribers.files import write_atomic

if TYPE_CHECKING:
    from subscribers.page_check import PageProblem
    from subscribers.pages import Pages


def page_settings(settings: Settings) -> dict[str, Any]:
    """The WebConfig fields of the pages: where their templates are, and
    what the site's layout is filled with."""
    return {
        "template_dirs": tuple(web_template_dirs(settings)),
        "template_cache": settings.root / TEMPLATE_CACHE,
        "layout": site_values(settings),
    }


def settings_pages(settings: Settings) -> Pages:
    """The pages as `publish serve` would answer with them, for checking
    and previewing: no link of theirs is signed, so the secret is a
    throwaway."""
    from subscribers.pages import Pages
    from subscribers.webconfig import WebConfig

    return Pages(
        WebConfig(
            name=settings.name,
            site_url=settings.site_url,
            sender=str(settings.sender),
            reply_to=str(settings.reply_to),
            postal_address=settings.postal_address,
            secret=secrets.token_hex(16),
            consent_text=settings.consent_text,
            blog_url=settings.blog_url,
            tracking=settings.tracking,
            **page_settings(settings),
        )
    )


def _problems(pages: Pages) -> list[PageProblem]:
    from subscribers.page_check import check_pages

    return check_pages(pages)


def check_pages(settings: Settings) -> list[Finding]:
    """Every page's errors, for `publish check`: each at its file and line."""
    return [
        Finding(problem.path, problem.line, "error", problem.message)
        for problem in _problems(settings_pages(settings))
    ]


def refuse_broken_pages(settings: Settings) -> None:
    """A :class:`TemplateError` for the first page in error, so that
    `publish serve` serves nothing from a broken page."""
    problems = _problems(settings_pages(settings))
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TemplateError(
            _within(first.path, settings.root),
            first.line,
            f"{first.message}{more}; nothing is served: publish check lists every problem",
        )


def write_page_preview(settings: Settings, page: str, folder: Path) -> Path:
    """Write ``page`` as a reader would see it, filled with sample values,
    to ``folder``/page-NAME.html. A page in error is a :class:`TemplateError`
    (its first problem) and nothing is written."""
    from subscribers.page_loader import PAGES
    from subscribers.page_samples import samples

    if page not in PAGES:
        raise PublishError(f"--page: {page!r} is not a page; choose one of {', '.join(PAGES)}")
    pages = settings_pages(settings)
    own = [p for p in _problems(pages) if p.page == page]
    if own:
        raise TemplateError(_within(own[0].path, settings.root), own[0].line, own[0].message)
    sample = next(s for s in samples(pages) if s.page == page)
    path = folder / f"page-{page}.html"
    write_atomic(path, pages.html(page, **sample.values))
    return path


def _within(path: Path, root: Path) -> Path:
    """``path`` relative to the newsletter's ``root`` when it is inside it."""
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path
