"""Where sends stand, and what is scheduled, for ``publish status``: plain data, ready for JSON.

    status_overview(settings)          every send, newest first, and the issues
                                       scheduled whose send has not begun
    status_overview(settings, issue)   the send of one issue (by slug or file),
      └─ Overview                      or its schedule if it has none yet

A send is a SendStatus: totals, failures with reasons, rate, what is left;
one issue's comes with its headline figures (delivered, bounce and
complaint rates, unsubscribes, top links: :func:`pipeline.report.build.issue_headline`).

Sends are read from the ledger (:meth:`subscribers.ledger.Ledger.status`),
the schedule by :func:`pipeline.schedule_list.load_schedule`; the CLI prints
what they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import SendError

if TYPE_CHECKING:
    from pipeline.report.data import IssueFigures
    from pipeline.schedule_list import ScheduleEntry
    from subscribers.ledger import SendStatus


@dataclass(frozen=True)
class Overview:
    """What ``publish status`` shows."""

    sends: list[SendStatus]
    """Newest first."""
    scheduled: list[ScheduleEntry]
    """Scheduled issues whose send has not begun, soonest first (one that
    began is among ``sends``)."""
    headline: IssueFigures | None = None
    """The one issue asked for: its send's headline figures."""


def status_overview(settings: Settings, issue: str | None = None) -> Overview:
    """Every send and every issue waiting for its time; or, for ``issue``
    (a slug, or an issue file whose slug is used), its send, else its
    schedule. :class:`SendError` for an issue neither sent nor scheduled."""
    from pipeline.schedule_list import load_schedule

    slug = None if issue is None else issue_slug(settings, issue)
    sends = _statuses(settings, slug)
    if slug is not None and sends:
        from pipeline.report.build import issue_headline

        return Overview(sends, [], issue_headline(settings, sends[0]))
    waiting = [item for item in load_schedule(settings) if not item.send_status]
    if slug is None:
        return Overview(sends, waiting)
    mine = [item for item in waiting if slug in (item.slug, str(item.path), item.path.name)]
    if not mine:
        raise SendError(f"{issue}: never sent (no send for the slug {slug!r}) and not scheduled")
    return Overview([], mine)


def _statuses(settings: Settings, slug: str | None) -> list[SendStatus]:
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    engine = connect(settings.database_url, settings.root)
    try:
        ledger = Ledger(engine)
        if slug is None:
            return [ledger.status(send.id) for send in ledger.sends()]
        send = ledger.find(slug)
        return [] if send is None else [ledger.status(send.id)]
    finally:
        engine.dispose()


def issue_slug(settings: Settings, name: str) -> str:
    """The slug ``name`` stands for: an issue file's slug, or ``name`` itself."""
    from pipeline.errors import IssueError
    from pipeline.issue import find_issue, load_issue

    try:
        return load_issue(find_issue(name, settings.issues_dir)).slug
    except IssueError:
        return name
