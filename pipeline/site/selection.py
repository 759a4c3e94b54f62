"""Which issues the site shows: the published ones, newest first.

A published issue is one that was sent (``sent`` maps its slug to when) or
whose ``publish_at`` has passed. Every other issue is a draft and stays off
the site, including one whose date is past but that was never sent.

    Context.issues ──parse──▶ Issue ──published_at(sent, now)──▶ published (newest first)
                                                          └──▶ drafts

The issues come from the command's context, read when it was built, so
selecting reads no file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.context import Context
from pipeline.errors import IssueError, SiteError
from pipeline.issue import Issue, default_slug


def published_at(issue: Issue, sent: Mapping[str, datetime], now: datetime) -> datetime | None:
    """When ``issue`` was published, or None while it is a draft."""
    if issue.slug in sent:
        return aware(sent[issue.slug])
    if issue.publish_at is not None and aware(issue.publish_at) <= aware(now):
        return aware(issue.publish_at)
    return None


def aware(moment: datetime) -> datetime:
    """Naive times (SQLite hands them back so) are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class Selection:
    """The issues found in issues/, split into published ones and drafts."""

    published: tuple[tuple[Issue, datetime], ...]
    """Each published issue with when it was published, newest first."""
    drafts: tuple[Issue, ...]
    all_issues: Mapping[Path, Issue]
    """Every issue that parses, drafts too, by its resolved path."""
    warnings: tuple[str, ...]

    def slug_of(self, path: Path) -> str:
        """The slug a link to another issue's file points at, as rendering sees it."""
        other = self.all_issues.get(path)
        return other.slug if other else default_slug(path)


def select_issues(context: Context, sent: Mapping[str, datetime], now: datetime) -> Selection:
    """Parse every issue file of the context and decide which ones the site shows.

    A file that does not parse is left out with a warning while it is a
    draft; if it was sent, its page would vanish, so that is an error.
    """
    published: list[tuple[Issue, datetime]] = []
    drafts: list[Issue] = []
    everything: dict[Path, Issue] = {}
    warnings: list[str] = []
    issues = context.issues
    for path in issues.paths:
        read = issues.read(path)
        issue, findings = read.issue, read.findings
        if issue is None:
            first = next(f for f in findings if f.severity == "error")
            if default_slug(path) in sent:
                raise IssueError(first.path, first.line, first.message)
            warnings.append(f"{first}: left off the site until fixed")
            continue
        everything[issues.files.resolve(path)] = issue
        moment = published_at(issue, sent, now)
        if moment is None:
            drafts.append(issue)
        else:
            published.append((issue, moment))

    seen: dict[str, Path] = {}
    for issue, _ in published:
        if issue.slug in seen:
            raise SiteError(
                f"{issue.path}: slug {issue.slug!r} is also used by {seen[issue.slug]}; "
                "two issues cannot share a page"
            )
        seen[issue.slug] = issue.path
    missing = sorted(set(sent) - {issue.slug for issue in everything.values()})
    for slug in missing:
        warnings.append(f"issue {slug!r} was sent but has no file in {context.settings.issues_dir}")
    published.sort(key=lambda pair: (pair[0].date, pair[1], pair[0].slug), reverse=True)
    return Selection(tuple(published), tuple(drafts), everything, tuple(warnings))
