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

What is scheduled is decided in one place, :func:`scheduled_issues`, from
the issue files as read (:func:`read_sources`) and the ledger's sends:
`publish due` sends what of it is due, and `publish schedule` and `publish
status` list it (:mod:`pipeline.schedule_list`). An issue unscheduled
(:mod:`pipeline.unschedule`) after `publish due` found it due, but before
its turn came, is left unsent: each new send reads its file again first.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.issue import (
    Finding,
    IssueFile,
    default_slug,
    find_issue_files,
    read_issue_file,
)
from pipeline.outcome import SendResult
from pipeline.progress import ProgressCallback
from pipeline.publish import PreparedSend, SendOptions, prepare_send
from pipeline.schedule_lock import issue_lock
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
    """new, resume (a run died), quota (a paused send may go on) or join
    (other workers are sending it and recipients are left: `publish worker`)."""
    problem: str = ""
    """Why it cannot be sent, found before trying (it is reported, not sent)."""


@dataclass(frozen=True)
class DueResult:
    due: Due
    result: SendResult | None = None
    error: str = ""
    passed: str = ""
    """Why a due issue was left unsent without fault: it was unscheduled
    (or given a later time) once `publish due` had found it due."""


@dataclass(frozen=True)
class IssueSource:
    """An issue file as the schedule sees it: parsed, and for one whose
    front matter does not parse, its text as far as it decodes (where its
    ``publish_at`` line may still be found)."""

    path: Path
    file: IssueFile
    text: str = ""
    error: str = ""
    """Why the file could not be read at all."""


@dataclass(frozen=True)
class Scheduled:
    """An issue file with a ``publish_at`` whose send has not finished."""

    path: Path
    slug: str
    publish_at: dt.datetime | None
    """When it is to go; None when its front matter cannot be read to say."""
    written: str
    """``publish_at`` as the file has it, with the editor's own offset."""
    send: SendRecord | None = None
    """Its send, once one began (and has not finished)."""
    problem: str = ""
    """Why `publish due` will not send it, known without rendering it."""
    readable: bool = True
    """Whether its front matter parses."""


def read_sources(paths: Iterable[Path]) -> list[IssueSource]:
    """Read and parse the issue files at ``paths`` for :func:`scheduled_issues`."""
    sources = []
    for path in paths:
        read = read_issue_file(path)
        if read.issue is not None:
            sources.append(IssueSource(path, read))
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            sources.append(IssueSource(path, read, error=f"{path}: {exc.strerror}"))
        else:
            sources.append(IssueSource(path, read, text))
    return sources


def scheduled_issues(
    sources: Iterable[IssueSource],
    sends: Sequence[SendRecord],
    root: Path,
    digest: Callable[[Path], str] = file_digest,
) -> list[Scheduled]:
    """Every issue with a ``publish_at`` that has not been sent, soonest
    first (those whose time cannot be read before all): the one place that
    decides what is scheduled. ``sends`` are the ledger's; ``digest`` tells
    an issue whose slug another issue's send took from that send's own file
    (only asked when their paths differ)."""
    by_slug = {send.issue_slug: send for send in sends}
    by_path = {send.issue_path: send for send in sends}
    found: list[Scheduled] = []
    for source in sources:
        issue, path = source.file.issue, source.path
        relative = relative_path(path, root)
        if issue is None:
            send = by_path.get(str(relative))
            if send is not None and send.status == "done":
                continue
            item = _unreadable(source, send, root)
            if item is not None:
                found.append(item)
            continue
        if issue.publish_at is None:
            continue
        written = issue.publish_at.isoformat()
        send = by_slug.get(issue.slug)
        refusal = (
            ""
            if send is None or send.issue_path == str(relative)
            else another_issues_slug(send, relative, digest(path))
        )
        if refusal:
            found.append(Scheduled(path, issue.slug, issue.publish_at, written, problem=refusal))
        elif send is None or send.status != "done":
            found.append(Scheduled(path, issue.slug, issue.publish_at, written, send))
    return sorted(found, key=_soonest)


def _soonest(item: Scheduled) -> tuple[bool, dt.datetime, str]:
    return (item.publish_at is not None, item.publish_at or _EPOCH, item.slug)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _unreadable(source: IssueSource, send: SendRecord | None, root: Path) -> Scheduled | None:
    """The schedule of an issue whose front matter cannot be read: its
    ``publish_at`` line, if it has one (or None if it has none), with the
    first error as the reason it will not be sent. A file that cannot be
    read at all may be scheduled, and is reported."""
    path = source.path
    slug = default_slug(path)
    if source.error:
        return Scheduled(path, slug, None, "", send, source.error, readable=False)
    front = source.text.split("\n---", 1)[0] if source.text.startswith("---") else ""
    match = _PUBLISH_AT.search(front)
    if match is None:
        return None
    written = match.group(1).strip().strip("'\"")
    try:
        when: dt.datetime | None = dt.datetime.fromisoformat(written)
    except ValueError:
        when = None
    if when is not None and when.tzinfo is None:
        when = None
    problem = first_error(source.file.findings, root)
    return Scheduled(path, slug, when, written, send, problem, readable=False)


def first_error(findings: Sequence[Finding], root: Path) -> str:
    """``path:line: message (and N more; see publish check)``: the first
    error among ``findings`` (or the first finding), for a one-line reason;
    the path from the newsletter's ``root`` when inside it."""
    errors = [f for f in findings if f.severity == "error"]
    first = errors[0] if errors else findings[0]
    more = f" (and {len(errors) - 1} more; see publish check)" if len(errors) > 1 else ""
    return f"{relative_path(first.path, root)}:{first.line}: {first.message}{more}"


_PUBLISH_AT = re.compile(r"^publish_at\s*:\s*(.*?)\s*(?:#.*)?$", re.MULTILINE)


def due_issues(
    settings: Settings, ledger: Ledger, now: dt.datetime, *, joining: bool = False
) -> list[Due]:
    """What to send at ``now``, oldest first: scheduled issues never sent,
    and every unfinished send that may go on, scheduled or not; with
    ``joining``, also the sends live workers are sending that have
    recipients left to claim."""
    found: dict[str, Due] = {}
    sends = ledger.sends()
    sources = read_sources(find_issue_files(settings.issues_dir))
    for item in scheduled_issues(sources, sends, settings.root):
        if item.publish_at is not None and item.publish_at > now:
            continue
        if item.send is not None and not item.readable:
            continue  # its send, if it may go on, is taken up below
        if item.problem:
            found[str(item.path)] = Due(
                item.path, item.slug, item.publish_at or now, "new", item.problem
            )
            continue
        reason = _why_due(ledger, item.send, now, joining=joining)
        if reason and item.publish_at is not None:
            found[item.slug] = Due(item.path, item.slug, item.publish_at, reason)
    for send in sends:
        if send.issue_slug in found:
            continue
        reason = _why_due(ledger, send, now, joining=joining)
        if not reason:
            continue
        path = settings.root / send.issue_path
        problem = "" if path.is_file() else (
            f"its issue file {send.issue_path} is gone: put it back to finish the send"
        )
        found[send.issue_slug] = Due(path, send.issue_slug, send.created_at, reason, problem)
    return sorted(found.values(), key=lambda due: due.publish_at)


def _why_due(
    ledger: Ledger, send: SendRecord | None, now: dt.datetime, *, joining: bool = False
) -> str:
    if send is None:
        return "new"
    if send.status in ("sending", "interrupted"):
        if not ledger.live_workers(send.id):
            return "resume"
        return "join" if joining and ledger.totals(send.id).pending else ""
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
        results.append(send_item(settings, options, item, stop=stop, on_progress=on_progress,
                                 on_start=on_start))
    return results


def send_item(
    settings: Settings,
    options: SendOptions,
    item: Due,
    *,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    on_start: Callable[[Due], None] | None = None,
) -> DueResult:
    """Send one due issue (`publish due` and `publish worker` alike), or say
    why it was not sent."""
    if item.problem:
        log.error("%s: not sent: %s", item.slug, item.problem)
        return DueResult(item, error=item.problem)
    if on_start is not None:
        on_start(item)
    # The issue's lock from reading its file until its send is in the
    # ledger, not for the whole send: another `publish due` may join it.
    lock = ExitStack()
    try:
        lock.enter_context(issue_lock(settings, item.path))
        with prepare_send(settings, item.path, options) as prepared:
            passed = _no_longer_due(prepared, item, dt.datetime.now(dt.UTC))
            if passed:
                log.info("%s: %s", item.slug, passed)
                return DueResult(item, passed=passed)
            result = prepared.run(stop=stop, on_progress=on_progress, on_recorded=lock.close)
            return DueResult(item, result)
    except PublishError as exc:
        log.error("%s: %s", item.slug, exc)
        return DueResult(item, error=str(exc))
    finally:
        lock.close()


def _no_longer_due(prepared: PreparedSend, item: Due, now: dt.datetime) -> str:
    """Why a new send found due is not to begin after all: its file, read
    again to send it, no longer has a ``publish_at`` that has passed."""
    if item.reason != "new" or prepared.plan.existing is not None:
        return ""
    publish_at = prepared.rendered.issue.publish_at
    if publish_at is None:
        return "not sent: it was unscheduled (its file has no publish_at now)"
    if publish_at > now:
        return f"not sent: it was rescheduled for {publish_at.isoformat()}"
    return ""
