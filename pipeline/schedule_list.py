"""What is scheduled and when, for ``publish schedule`` and ``publish status``.

    load_schedule(settings)              the issue files and the ledger's sends, read
      ├─ scheduled_issues(...)           what is scheduled (pipeline.schedule decides)
      ├─ check_issue(...)                the lint errors of those that would be sent
      └─ schedule_entries(...)           → [ScheduleEntry], soonest first: each with
                                         its time and its state

A state is what `publish due` would do with the issue: ``waiting`` for its
time, ``due now`` (the next run sends it), ``sending`` (its send began and
has not finished), or ``refused`` with the reason it would not send it (a
front matter or lint error, a slug another issue's send took). Plain data,
ready for JSON; the CLI prints it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.config import Settings
from pipeline.issue import Finding, find_issue_files
from pipeline.schedule import Scheduled, first_error, read_sources, scheduled_issues
from pipeline.sendplan import relative_path

State = Literal["waiting", "due now", "sending", "refused"]


@dataclass(frozen=True)
class ScheduleEntry:
    """One scheduled issue: when it goes, and what `publish due` will do."""

    slug: str
    path: Path
    """The issue file, within the newsletter's root when it lies there."""
    publish_at: dt.datetime | None
    """None when its front matter cannot be read to say."""
    written: str
    """``publish_at`` as the file has it, in the editor's own offset."""
    state: State
    reason: str = ""
    """Why it is refused."""
    send_status: str = ""
    """The ledger's status of its send, once one began."""

    @property
    def shown_state(self) -> str:
        """``waiting``, ``due now``, ``sending`` or ``refused: <reason>``."""
        return f"refused: {self.reason}" if self.state == "refused" else self.state

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.slug,
            "path": str(self.path),
            "status": self.send_status or "scheduled",
            "publish_at": self.publish_at.astimezone(dt.UTC).isoformat()
            if self.publish_at
            else None,
            "publish_at_as_written": self.written,
            "state": self.state,
            "reason": self.reason,
        }


def schedule_entries(
    scheduled: Sequence[Scheduled],
    lint_errors: Mapping[Path, Sequence[Finding]],
    root: Path,
    now: dt.datetime,
) -> list[ScheduleEntry]:
    """The state of each scheduled issue at ``now``, in the order given;
    ``lint_errors`` are those `publish check` finds in each issue that
    `publish due` would send (by path as ``scheduled`` spells it)."""
    entries = []
    for item in scheduled:
        errors = lint_errors.get(item.path, ())
        state: State
        reason = ""
        if item.send is not None:
            state = "sending"
        elif item.problem or errors:
            state, reason = "refused", item.problem or first_error(errors, root)
        elif item.publish_at is not None and item.publish_at <= now:
            state = "due now"
        else:
            state = "waiting"
        entries.append(
            ScheduleEntry(
                slug=item.slug,
                path=relative_path(item.path, root),
                publish_at=item.publish_at,
                written=item.written,
                state=state,
                reason=reason,
                send_status=item.send.status if item.send is not None else "",
            )
        )
    return entries


def load_schedule(settings: Settings, now: dt.datetime | None = None) -> list[ScheduleEntry]:
    """Every scheduled issue with its time and state, soonest first.

    Reads the issue files and the ledger; the issues `publish due` would
    send are checked as `publish check` checks them (the command's context
    is only read when there is one)."""
    from pipeline.context import Context
    from pipeline.lint import check_issue
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    moment = now or dt.datetime.now(dt.UTC)
    engine = connect(settings.database_url, settings.root)
    try:
        sends = Ledger(engine).sends()
    finally:
        engine.dispose()
    sources = read_sources(find_issue_files(settings.issues_dir))
    scheduled = scheduled_issues(sources, sends, settings.root)
    unchecked = [item.path for item in scheduled if item.send is None and not item.problem]
    lint_errors: dict[Path, tuple[Finding, ...]] = {}
    if unchecked:
        context = Context.load(settings)
        lint_errors = {path: check_issue(path, context).errors for path in unchecked}
    return schedule_entries(scheduled, lint_errors, settings.root, moment)
