"""Where the report's figures come from, and where the page goes: the part of
:mod:`pipeline.report` that touches the database and the disk.

    load_report(settings, weeks=)        ──▶ Report     the database read in
                                                        one transaction, the
                                                        figures made pure
    write_report(report, path)           ──▶ path       the page, written
                                                        atomically
    issue_headline(settings, status)     ──▶ IssueFigures   one send's
                                                        headline figures
                                                        (`publish status ISSUE`)

Opens and clicks are read only when ``tracking.enabled`` is on
(:func:`subscribers.engagement.engagement_for`); off, the report says so.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.report.data import (
    Engagement,
    IssueFigures,
    Report,
    build_report,
    engagement_of,
    first_week,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from subscribers.ledger import SendStatus

DEFAULT_WEEKS = 26
MAX_WEEKS = 520


def load_report(
    settings: Settings, *, weeks: int = DEFAULT_WEEKS, now: dt.datetime | None = None
) -> Report:
    """The report of the last ``weeks`` weeks and of every send."""
    from subscribers.db import connect
    from subscribers.db.outages import unavailable
    from subscribers.models import utcnow
    from subscribers.reporting import read_report

    moment = now or utcnow()
    engine = connect(settings.database_url, settings.root)
    try:
        with unavailable(engine, writing=False), engine.connect() as conn, conn.begin():
            rows = read_report(conn, first_week(moment, weeks))
            engagement = {
                send.issue_slug: _engagement(conn, send.issue_slug, settings.tracking)
                for send in rows.sends
            }
    finally:
        engine.dispose()
    return build_report(
        rows,
        engagement,
        newsletter=settings.name,
        now=moment,
        weeks=weeks,
        tracking=settings.tracking,
    )


def _engagement(conn: Connection, slug: str, tracking: bool) -> Engagement | None:
    if not tracking:
        return None
    from subscribers.engagement import engagement_for

    return engagement_of(engagement_for(conn, slug))


def write_report(report: Report, path: Path) -> Path:
    """The page written to ``path`` (a temporary file renamed into place);
    :class:`PublishError`, and nothing written, when it cannot be."""
    from pipeline.report.page import render_report
    from subscribers.files import write_atomic

    page = render_report(report)
    if path.is_dir():
        raise PublishError(f"{path}: is a folder; name the report's file (-o report.html)")
    try:
        write_atomic(path, page)
    except OSError as exc:
        raise PublishError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    return path


def issue_headline(settings: Settings, status: SendStatus) -> IssueFigures:
    """One send's headline figures: delivered, bounce and complaint rates,
    the readers who left after it, and its links when tracking is on."""
    from subscribers.db import connect
    from subscribers.db.outages import unavailable
    from subscribers.ledger.departures import departures
    from subscribers.reporting import unsubscribes_by_send

    send = status.send
    engine = connect(settings.database_url, settings.root)
    try:
        with unavailable(engine, writing=False), engine.connect() as conn:
            left = unsubscribes_by_send(conn, send.id).get(send.id, 0)
            reasons = departures(conn, send.id).reasons
            engagement = _engagement(conn, send.issue_slug, settings.tracking)
    finally:
        engine.dispose()
    events = status.events
    return IssueFigures(
        slug=send.issue_slug,
        subject=send.subject,
        sent_on=send.created_at.astimezone(dt.UTC).date(),
        status=send.status,
        sent=status.totals.sent,
        failed=status.totals.failed,
        delivered=events.get("delivered", 0),
        bounced=events.get("bounced", 0),
        complained=events.get("complained", 0),
        unsubscribed=left,
        reasons=reasons,
        engagement=engagement,
    )
