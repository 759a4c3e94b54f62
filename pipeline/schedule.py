"""`publish due`: send what is due, and resume what was left unfinished.

Safe to run from cron every minute. An issue is due when its ``publish_at``
has passed and it was never sent. A send already in the ledger is taken up
again, whether its issue was scheduled or sent by hand, when it was left in
``sending`` by a run that died or ``interrupted`` by a signal (Ctrl-C,
SIGTERM), and no live process is working on it; or paused by the daily
quota past its ``paused_until``. A send the provider stopped (a suspended
account) waits for the editor, and a finished one is left alone.

An issue that cannot be sent is never passed over in silence: a scheduled
issue whose front matter cannot be read, or an unfinished send whose issue
file is gone, is reported as not sent, and `publish due` exits 1.

Two overlapping runs never send a message twice: they create the same send
(the slug is unique) and share its recipients through the ledger's claims.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.issue import Finding, default_slug, find_issue_files, read_issue_file
from pipeline.outcome import SendResult
from pipeline.progress import ProgressCallback
from pipeline.publish import SendOptions, prepare_send
from pipeline.sendplan import another_issues_slug, file_digest, relative_path

if TYPE_CHECKING:
    from subscribers.ledger import Ledger, SendRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    """An issue to send now, and why."""

    path: Path
    slug: str
    publish_at: dt.datetime
    """When it became due: its ``publish_at``, or when its send began."""
    reason: str
    """new, resume (a run died) or quota (a paused send may go on)."""
    problem: str = ""
    """Why it cannot be sent, found before trying (it is reported, not sent)."""


@dataclass(frozen=True)
class DueResult:
    due: Due
    result: SendResult | None = None
    error: str = ""


def due_issues(settings: Settings, ledger: Ledger, now: dt.datetime) -> list[Due]:
    """What to send at ``now``, oldest first: scheduled issues never sent,
    and every unfinished send that may go on, scheduled or not."""
    found: dict[str, Due] = {}
    sends = ledger.sends()
    sent_from = {send.issue_path for send in sends}
    for path in find_issue_files(settings.issues_dir):
        read = read_issue_file(path)
        issue = read.issue
        if issue is None:
            if str(relative_path(path, settings.root)) in sent_from:
                continue  # its send, if unfinished, is taken up below
            problem = _unreadable_schedule(read.findings, now)
            if problem:
                found[str(path)] = Due(path, default_slug(path), now, "new", problem)
            continue
        if issue.publish_at is None or issue.publish_at > now:
            continue
        send = ledger.find(issue.slug)
        if send is not None:
            refusal = another_issues_slug(
                send, relative_path(path, settings.root), file_digest(path)
            )
            if refusal:
                found[str(path)] = Due(path, issue.slug, issue.publish_at, "new", refusal)
                continue
        reason = _why_due(ledger, send, now)
        if reason:
            found[issue.slug] = Due(path, issue.slug, issue.publish_at, reason)
    for send in sends:
        if send.issue_slug in found:
            continue
        reason = _why_due(ledger, send, now)
        if not reason:
            continue
        path = settings.root / send.issue_path
        problem = "" if path.is_file() else (
            f"its issue file {send.issue_path} is gone: put it back to finish the send"
        )
        found[send.issue_slug] = Due(path, send.issue_slug, send.created_at, reason, problem)
    return sorted(found.values(), key=lambda due: due.publish_at)


def _unreadable_schedule(findings: Sequence[Finding], now: dt.datetime) -> str:
    """Why an issue whose front matter could not be read may be due: its
    ``publish_at`` line is there and has passed (or cannot be read either).
    Empty for a draft without one, or one scheduled for later."""
    if not findings:
        return ""
    path = findings[0].path
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    front = text.split("\n---", 1)[0] if text.startswith("---") else ""
    match = _PUBLISH_AT.search(front)
    if match is None:
        return ""
    try:
        when = dt.datetime.fromisoformat(match.group(1).strip().strip("'\""))
    except ValueError:
        when = None
    if when is not None and when.tzinfo is not None and when > now:
        return ""
    errors = [f for f in findings if f.severity == "error"]
    first = errors[0] if errors else findings[0]
    more = f" (and {len(errors) - 1} more; see publish check)" if len(errors) > 1 else ""
    return f"{first.path}:{first.line}: {first.message}{more}"


_PUBLISH_AT = re.compile(r"^publish_at\s*:\s*(.*?)\s*(?:#.*)?$", re.MULTILINE)


def _why_due(ledger: Ledger, send: SendRecord | None, now: dt.datetime) -> str:
    if send is None:
        return "new"
    if send.status in ("sending", "interrupted"):
        return "" if ledger.live_workers(send.id) else "resume"
    if send.status == "paused" and (send.paused_until is None or send.paused_until <= now):
        return "quota"
    return ""


def send_due(
    settings: Settings,
    options: SendOptions,
    *,
    now: dt.datetime | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    on_start: Callable[[Due], None] | None = None,
) -> list[DueResult]:
    """Send every due issue, one after the other; an issue that cannot be
    sent (lint errors, a refused account) is reported and the rest go on."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    moment = now or dt.datetime.now(dt.UTC)
    engine = connect(settings.database_url, settings.root)
    try:
        due = due_issues(settings, Ledger(engine), moment)
    finally:
        engine.dispose()
    results: list[DueResult] = []
    for item in due:
        if stop is not None and stop.is_set():
            break
        if item.problem:
            log.error("%s: not sent: %s", item.slug, item.problem)
            results.append(DueResult(item, error=item.problem))
            continue
        if on_start is not None:
            on_start(item)
        try:
            with prepare_send(settings, item.path, options) as prepared:
                results.append(DueResult(item, prepared.run(stop=stop, on_progress=on_progress)))
        except PublishError as exc:
            log.error("%s: %s", item.slug, exc)
            results.append(DueResult(item, error=str(exc)))
    return results
