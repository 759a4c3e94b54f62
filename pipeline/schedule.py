"""`publish due`: send the scheduled issues whose time has come.

Safe to run from cron every minute. An issue is due when its ``publish_at``
has passed and its send has not finished: never started, left in
``sending`` by a run that died (and that no live process is working on), or
paused by the daily quota past its ``paused_until``. A send the editor
stopped, or one that finished, is left alone.

Two overlapping runs never send a message twice: they create the same send
(the slug is unique) and share its recipients through the ledger's claims.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.issue import find_issue_files, read_issue
from pipeline.publish import SendOptions, SendResult, prepare_send
from pipeline.send import ProgressCallback

if TYPE_CHECKING:
    from subscribers.ledger import Ledger, SendRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Due:
    """An issue to send now, and why."""

    path: Path
    slug: str
    publish_at: dt.datetime
    reason: str
    """new, resume (a run died) or quota (a paused send may go on)."""


@dataclass(frozen=True)
class DueResult:
    due: Due
    result: SendResult | None = None
    error: str = ""


def due_issues(settings: Settings, ledger: Ledger, now: dt.datetime) -> list[Due]:
    """The scheduled issues to send at ``now``, oldest first."""
    found: list[Due] = []
    for path in find_issue_files(settings.issues_dir):
        issue, _ = read_issue(path)
        if issue is None or issue.publish_at is None or issue.publish_at > now:
            continue
        reason = _why_due(ledger, ledger.find(issue.slug), now)
        if reason:
            found.append(Due(path, issue.slug, issue.publish_at, reason))
    return sorted(found, key=lambda due: due.publish_at)


def _why_due(ledger: Ledger, send: SendRecord | None, now: dt.datetime) -> str:
    if send is None:
        return "new"
    if send.status == "sending":
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
        if on_start is not None:
            on_start(item)
        try:
            with prepare_send(settings, item.path, options) as prepared:
                results.append(DueResult(item, prepared.run(stop=stop, on_progress=on_progress)))
        except PublishError as exc:
            log.error("%s: %s", item.slug, exc)
            results.append(DueResult(item, error=str(exc)))
    return results
