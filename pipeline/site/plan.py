"""Planning: every file of the site decided in memory, nothing written.

:func:`plan_site` is the first of a build's two phases. It works from the
command's context (the issues, the templates and the index of issues/, all
read when the context was built) and takes what the last build left as
plain data (:class:`~pipeline.site.cache.LastBuild`); it reads no file and
writes none. A bad issue or template therefore stops the build before any
file changes.

    Context, sent, now ─ select_issues ─▶ Selection (published, newest first)
    each published issue + its Neighbours (previous, next, the latest others)
                         ─ reuse(LastBuild), or the RenderedIssue the command
                           made already, or render_issue ─▶ Page + its assets
    Pages ─▶ ArchiveEntry* ─ site_pages ─▶ archive, tags, subscribe, 404,
                                           feeds, sitemap, robots.txt
    everything + static files + manifest ─▶ Site (public path → bytes or a file to copy)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.context import Context
from pipeline.feeds import feed_item_html
from pipeline.issue import Issue
from pipeline.render import (
    RenderedIssue,
    date_text,
    issue_path_url,
    issue_resolver,
    render_issue,
)
from pipeline.site.cache import (
    NO_BUILD,
    LastBuild,
    Page,
    manifest,
    page_key,
    reuse,
    site_fingerprint,
)
from pipeline.site.pages import FEED_SIZE, ArchiveEntry, site_pages
from pipeline.site.selection import Selection, select_issues
from pipeline.webpage import LATEST, IssueLink, Neighbours


@dataclass(frozen=True)
class Site:
    """The whole site, decided: public path to bytes, or to a file to copy."""

    files: Mapping[str, bytes | Path]
    entries: tuple[ArchiveEntry, ...]
    drafts: tuple[str, ...]
    warnings: tuple[str, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    previous_files: tuple[str, ...] = ()
    """The files the last build wrote, as its manifest lists them."""


def plan_site(
    context: Context,
    sent: Mapping[str, datetime],
    now: datetime,
    last: LastBuild = NO_BUILD,
    rendered: Iterable[RenderedIssue] = (),
) -> Site:
    """Decide every file of the site without writing any.

    ``last`` is what the previous build left in public/ (see
    :func:`~pipeline.site.cache.read_last_build`); its pages are used again
    where nothing they were made from changed. ``rendered`` are issues the
    command rendered already with this context (the one ``publish issue``
    checked, say): each is used for its issue's page as long as the file's
    text is what it was rendered from, so no issue is rendered twice. Raises
    :class:`IssueError` for a published issue that cannot be rendered (a
    relative image with no file behind it, say) and :class:`TemplateError`
    for a broken template.
    """
    selection = select_issues(context, sent, now)
    fingerprint = site_fingerprint(context)
    files_index = context.issues.files
    ready = {(files_index.resolve(r.issue.path), r.issue.source): r for r in rendered}

    links = [
        IssueLink(
            issue.title,
            issue_path_url(context.settings, issue.slug),
            issue.date,
            date_text(issue.date),
        )
        for issue, _ in selection.published
    ]
    files: dict[str, bytes | Path] = {}
    entries: list[ArchiveEntry] = []
    pages: dict[str, Page] = {}
    for n, (issue, moment) in enumerate(selection.published):
        in_feed = n < FEED_SIZE  # newest first, as the feeds list them
        path = files_index.resolve(issue.path)
        around = _neighbours(links, n)
        key = page_key(fingerprint, issue, path, around)
        page = reuse(last, issue, key, selection, in_feed, files_index) or _page(
            context, issue, key, around, selection, in_feed, ready.get((path, issue.source))
        )
        files[f"issues/{issue.slug}/index.html"] = page.page
        # Every asset's file was in the index: a rendered page's when
        # render_issue resolved it, a reused page's when reuse checked it.
        for asset in page.assets:
            files[asset.public_path] = asset.content
        pages[issue.slug] = page
        entries.append(
            ArchiveEntry(
                issue=issue,
                url=issue_path_url(context.settings, issue.slug),
                published=moment,
                summary=issue.preheader or page.excerpt,
                content_html=page.content_html,
            )
        )

    files.update(site_pages(context.settings, context.web, entries))
    for public_path, source in context.web.static.items():
        files.setdefault(public_path, source)

    return Site(
        files=files,
        entries=tuple(entries),
        drafts=tuple(sorted(issue.slug for issue in selection.drafts)),
        warnings=selection.warnings,
        manifest=manifest(fingerprint, files, pages),
        previous_files=last.files,
    )


def _neighbours(links: list[IssueLink], n: int) -> Neighbours:
    """The issues around the ``n``-th newest of ``links``."""
    return Neighbours(
        previous=links[n + 1] if n + 1 < len(links) else None,
        next=links[n - 1] if n > 0 else None,
        latest=tuple(link for i, link in enumerate(links[: LATEST + 1]) if i != n)[:LATEST],
    )


def _page(
    context: Context,
    issue: Issue,
    key: str,
    around: Neighbours,
    selection: Selection,
    in_feed: bool,
    rendered: RenderedIssue | None,
) -> Page:
    """``issue``'s page from ``rendered``, or rendered now, with the issues
    ``around`` it, noting the issues its text links to by the slugs they have
    now, so that a page is made again when one of them changes."""
    if rendered is None:
        rendered = render_issue(issue, context)
    resolver = issue_resolver(context, issue)
    links = {}
    for ref in rendered.references:
        target = resolver.local_file(ref.target) if resolver.is_relative(ref.target) else None
        if target is not None and target.suffix == ".md":
            links[str(target)] = selection.slug_of(target)
    return Page(
        key=key,
        page=rendered.page.html(context.web, around).encode(),
        excerpt=rendered.excerpt,
        content_html=feed_item_html(rendered.body, rendered.web_url) if in_feed else None,
        assets=rendered.assets,
        links=links,
    )
