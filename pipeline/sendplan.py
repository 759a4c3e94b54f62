"""Planning a send: what ``publish issue`` is about to do, before anything is written.

    checked_issue(context, path)    the issue linted and rendered, or
      │                             IssueNotReady with every finding
      └─ plan_send(ledger, ...)     where the issue's send stands in the
                                    ledger → SendPlan, for the editor to confirm

A send belongs to the issue file it was made from: its path within the
newsletter (:func:`relative_path`) and the sha256 of its bytes
(:func:`file_digest`), recorded with the send. :func:`another_issues_slug`
refuses a different file that took the same slug, so it never resumes
another issue's send; ``publish due`` (:mod:`pipeline.schedule`) asks the
same question of every issue file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.context import Context
from pipeline.errors import SendError
from pipeline.issue import Finding
from pipeline.render import RenderedIssue

if TYPE_CHECKING:
    from subscribers.ledger import Ledger, SendRecord, Totals


@dataclass(frozen=True)
class SendPlan:
    """What ``publish issue`` is about to do, for the editor to confirm."""

    slug: str
    path: Path
    subject: str
    transport: str
    recipients: int
    """Messages this run would send: every active subscriber for a new send;
    the rows not yet sent or skipped when resuming."""
    existing: SendRecord | None
    totals: Totals | None
    scheduled_for: dt.datetime | None
    """``publish_at`` when it is still in the future and the issue was never sent."""
    digest: str = ""
    """sha256 of the issue file, recorded with a new send."""

    @property
    def resuming(self) -> bool:
        return self.existing is not None


class IssueNotReady(SendError):
    """The issue has lint errors; ``findings`` lists every one."""

    def __init__(self, path: Path, findings: tuple[Finding, ...]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.severity == "error"]
        plural = "s" if len(errors) != 1 else ""
        super().__init__(
            f"{path}: {len(errors)} lint error{plural}, nothing sent (see publish check {path})"
        )


def checked_issue(context: Context, path: Path) -> RenderedIssue:
    """The issue at ``path`` (read into ``context``) rendered, or
    :class:`IssueNotReady` if it has lint errors."""
    from pipeline.lint import check_issue

    result = check_issue(path, context)
    if not result.ok or result.rendered is None:
        raise IssueNotReady(path, result.findings)
    return result.rendered


def plan_send(
    ledger: Ledger, rendered: RenderedIssue, path: Path, digest: str, transport: str
) -> SendPlan:
    """Where the send of ``rendered`` stands in ``ledger`` and what a run
    through ``transport`` would do; reads the ledger, writes nothing.

    ``path`` is the issue file within the newsletter and ``digest`` its
    :func:`file_digest`; :class:`SendError` if the slug's send was made from
    another issue (:func:`another_issues_slug`).
    """
    existing = ledger.find(rendered.issue.slug)
    refusal = "" if existing is None else another_issues_slug(existing, path, digest)
    if refusal:
        raise SendError(refusal)
    totals = ledger.totals(existing.id) if existing else None
    recipients = totals.unsent if totals else ledger.active_count()
    publish_at = rendered.issue.publish_at
    scheduled = (
        publish_at
        if existing is None and publish_at is not None and publish_at > dt.datetime.now(dt.UTC)
        else None
    )
    return SendPlan(
        slug=rendered.issue.slug,
        path=path,
        subject=rendered.subject,
        transport=transport,
        recipients=recipients,
        existing=existing,
        totals=totals,
        scheduled_for=scheduled,
        digest=digest,
    )


def file_digest(path: Path) -> str:
    """sha256 of an issue file's bytes: which issue a send was made from."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise SendError(f"{path}: {exc.strerror}") from None


def another_issues_slug(send: SendRecord, path: Path, digest: str) -> str:
    """Why the file at ``path`` may not take up ``send``, or "" if it may.

    A send belongs to the file it was made from: the same path (edited
    since or not), or the same content moved to another name. Another file
    with the same slug is another issue, and must not resume that send."""
    if send.issue_path == str(path) or (send.issue_digest and send.issue_digest == digest):
        return ""
    return (
        f"{path}: its slug {send.issue_slug!r} belongs to the send made from "
        f"{send.issue_path} on {send.created_at:%Y-%m-%d}; give this issue its own slug "
        "(a slug: line in its front matter)"
    )


def relative_path(path: Path, root: Path) -> Path:
    """``path`` relative to the newsletter's root when it lies inside it."""
    try:
        return path.resolve().relative_to(root)
    except ValueError:
        return path
