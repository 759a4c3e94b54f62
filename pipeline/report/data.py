"""The report's figures, made from plain rows: weeks, rates and how each rate
stands against the limits senders are held to. Pure: no database, no clock.

    build_report(rows, engagement, newsletter=, now=, weeks=, tracking=) ──▶ Report
        weeks     the last ``weeks`` weeks (Monday to Sunday, UTC) since the
                  list's history began: active subscribers at each week's
                  end, and signups, confirmations, unsubscribes, bounces and
                  complaints in it; a week with nothing in it is all zeros
        issues    each send: sent, delivered, bounce, complaint and
                  unsubscribe rates, reasons, opens and clicks when tracked
        sources   subscribers by the source kept with their consent
    issue_figures(...) ──▶ IssueFigures   one send (`publish status ISSUE` too)

Each rate is judged against its limits by :mod:`pipeline.report.limits`.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pipeline.report.limits import (
    BOUNCE_THRESHOLDS,
    COMPLAINT_THRESHOLDS,
    Judgement,
    Level,
    judge,
)
from subscribers.models import Status

if TYPE_CHECKING:
    from subscribers.engagement import Engagement as Counted
    from subscribers.reporting import ListHistory, ReportRows, SendFigures

WEEK = dt.timedelta(days=7)
TOP_LINKS = 5


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Link:
    url: str
    clicks: int
    unique: int
    """Different messages it was clicked in: about how many readers."""


@dataclass(frozen=True)
class Engagement:
    """Opens and clicks counted for an issue (``tracking.enabled``)."""

    opens: int
    unique_opens: int
    machine_opens: int
    """Opens by a mail server or proxy fetching pictures, not by a reader."""
    clicks: int
    unique_clicks: int
    links: tuple[Link, ...]
    """Most clicked first."""


def engagement_of(found: Counted | None) -> Engagement | None:
    """The subscribers' ``Engagement`` (opens, unique_opens, machine_opens,
    clicks, unique_clicks, links as ``(url, clicks, unique)``) as plain data,
    links most clicked first; None for None."""
    if found is None:
        return None
    links = sorted(
        (Link(str(url), int(clicks), int(unique)) for url, clicks, unique in found.links),
        key=lambda link: (-link.clicks, -link.unique, link.url),
    )
    return Engagement(
        opens=int(found.opens),
        unique_opens=int(found.unique_opens),
        machine_opens=int(found.machine_opens),
        clicks=int(found.clicks),
        unique_clicks=int(found.unique_clicks),
        links=tuple(links),
    )


@dataclass(frozen=True)
class IssueFigures:
    """One send, in figures."""

    slug: str
    subject: str
    sent_on: dt.date
    status: str
    sent: int
    failed: int
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int
    reasons: dict[str, int]
    engagement: Engagement | None
    """None when opens and clicks are not tracked."""

    @property
    def delivered_rate(self) -> float | None:
        """None until SES reports a delivery (its delivery notifications may be off)."""
        return share(self.delivered, self.sent) if self.delivered else None

    @property
    def bounce_rate(self) -> float | None:
        return share(self.bounced, self.sent)

    @property
    def complaint_rate(self) -> float | None:
        return share(self.complained, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return share(self.unsubscribed, self.sent)

    @property
    def bounce(self) -> Judgement:
        return judge(self.bounce_rate, BOUNCE_THRESHOLDS)

    @property
    def complaint(self) -> Judgement:
        return judge(self.complaint_rate, COMPLAINT_THRESHOLDS)

    @property
    def warnings(self) -> list[tuple[Level, str]]:
        """``(near | over, sentence)`` for each rate near or over its limit."""
        found: list[tuple[Level, str]] = []
        for judgement, what, rate in (
            (self.bounce, "bounce rate", self.bounce_rate),
            (self.complaint, "complaint rate", self.complaint_rate),
        ):
            if judgement.level != "ok":
                found.append((judgement.level, judgement.words(what, rate)))
        return found

    @property
    def open_rate(self) -> float | None:
        """Different messages opened, of those delivered (or sent)."""
        if self.engagement is None:
            return None
        return share(self.engagement.unique_opens, self.delivered or self.sent)

    @property
    def click_rate(self) -> float | None:
        if self.engagement is None:
            return None
        return share(self.engagement.unique_clicks, self.delivered or self.sent)

    def as_dict(self) -> dict[str, Any]:
        engaged = self.engagement
        return {
            "issue": self.slug,
            "subject": self.subject,
            "sent_on": self.sent_on.isoformat(),
            "status": self.status,
            "sent": self.sent,
            "failed": self.failed,
            "delivered": self.delivered,
            "bounced": self.bounced,
            "complained": self.complained,
            "unsubscribed": self.unsubscribed,
            "delivered_rate": _rounded(self.delivered_rate),
            "bounce_rate": _rounded(self.bounce_rate),
            "complaint_rate": _rounded(self.complaint_rate),
            "unsubscribe_rate": _rounded(self.unsubscribe_rate),
            "bounce_level": self.bounce.level,
            "complaint_level": self.complaint.level,
            "unsubscribe_reasons": dict(self.reasons),
            "tracking": None
            if engaged is None
            else {
                **{k: v for k, v in asdict(engaged).items() if k != "links"},
                "open_rate": _rounded(self.open_rate),
                "click_rate": _rounded(self.click_rate),
                "top_links": [asdict(link) for link in engaged.links[:TOP_LINKS]],
            },
        }


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 6)


def issue_figures(send: SendFigures, engagement: Engagement | None) -> IssueFigures:
    """One send's figures, from its row."""
    return IssueFigures(
        slug=send.issue_slug,
        subject=send.subject,
        sent_on=send.created_at.astimezone(dt.UTC).date(),
        status=send.status,
        sent=send.sent,
        failed=send.failed,
        delivered=send.feedback.get("delivered", 0),
        bounced=send.feedback.get("bounced", 0),
        complained=send.feedback.get("complained", 0),
        unsubscribed=send.unsubscribed,
        reasons=dict(send.reasons),
        engagement=engagement,
    )


@dataclass(frozen=True)
class Week:
    start: dt.date
    """Its Monday."""
    active: int
    """Active subscribers at its end (now, for this week)."""
    signups: int = 0
    confirmations: int = 0
    unsubscribes: int = 0
    bounces: int = 0
    complaints: int = 0


MEASURES = ("signups", "confirmations", "unsubscribes", "bounces", "complaints")


def monday(moment: dt.datetime) -> dt.date:
    day = moment.astimezone(dt.UTC).date()
    return day - dt.timedelta(days=day.weekday())


def first_week(now: dt.datetime, weeks: int) -> dt.datetime:
    """The start (Monday 00:00 UTC) of the oldest of the last ``weeks`` weeks."""
    start = monday(now) - (weeks - 1) * WEEK
    return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)


def weekly(history: ListHistory, now: dt.datetime, weeks: int) -> list[Week]:
    """The last ``weeks`` weeks to this one, none before the history's first."""
    start = first_week(now, weeks)
    if history.first_at is None:
        start = first_week(now, 1)
    elif history.first_at > start:
        start = first_week(history.first_at, 1)
    starts = sorted(span[0] for span in history.active)
    ends = sorted(span[1] for span in history.active if span[1] is not None)
    counted: dict[dt.date, dict[str, int]] = {}
    for measure, at in history.events:
        if start <= at <= now:
            bucket = counted.setdefault(monday(at), {})
            bucket[measure] = bucket.get(measure, 0) + 1
    found = []
    moment = start
    while moment <= now:
        end = min(moment + WEEK, now)
        # Active at ``end``: begun by then and not ended by then.
        active = bisect.bisect_right(starts, end) - bisect.bisect_right(ends, end)
        counts = counted.get(moment.date(), {})
        found.append(Week(moment.date(), active, **{m: counts.get(m, 0) for m in MEASURES}))
        moment += WEEK
    return found


@dataclass(frozen=True)
class SourceLine:
    source: str
    """The page signups came from, or ``not recorded``."""
    readers: int
    """Everyone whose consent names it, whatever their status now."""
    active: int
    pending: int
    left: int


NOT_RECORDED = "not recorded"


def by_source(rows: ReportRows) -> list[SourceLine]:
    """Readers by the source of their consent, most first."""
    table: dict[str, dict[str, int]] = {}
    for row in rows.sources:
        counts = table.setdefault(row.source or NOT_RECORDED, {})
        group = row.status if row.status in (Status.ACTIVE, Status.PENDING) else "left"
        counts[group] = counts.get(group, 0) + row.count
    lines = [
        SourceLine(
            source,
            sum(counts.values()),
            counts.get(Status.ACTIVE, 0),
            counts.get(Status.PENDING, 0),
            counts.get("left", 0),
        )
        for source, counts in table.items()
    ]
    return sorted(lines, key=lambda line: (line.source == NOT_RECORDED, -line.readers, line.source))


@dataclass(frozen=True)
class Report:
    """Everything ``publish report`` shows, and ``--json`` prints."""

    newsletter: str
    generated_at: dt.datetime
    tracking: bool
    weeks: tuple[Week, ...]
    issues: tuple[IssueFigures, ...]
    """Oldest first."""
    sources: tuple[SourceLine, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "newsletter": self.newsletter,
            "generated_at": self.generated_at.isoformat(),
            "tracking": self.tracking,
            "thresholds": {
                "bounce": [asdict(t) for t in BOUNCE_THRESHOLDS],
                "complaint": [asdict(t) for t in COMPLAINT_THRESHOLDS],
                "near": "at least half of a limit",
            },
            "weeks": [{**asdict(w), "start": w.start.isoformat()} for w in self.weeks],
            "issues": [issue.as_dict() for issue in self.issues],
            "sources": [asdict(line) for line in self.sources],
        }


def build_report(
    rows: ReportRows,
    engagement: Mapping[str, Engagement | None],
    *,
    newsletter: str,
    now: dt.datetime,
    weeks: int,
    tracking: bool,
) -> Report:
    """The report from what the database holds (``engagement`` by issue slug)."""
    return Report(
        newsletter=newsletter,
        generated_at=now,
        tracking=tracking,
        weeks=tuple(weekly(rows.history, now, weeks)),
        issues=tuple(issue_figures(send, engagement.get(send.issue_slug)) for send in rows.sends),
        sources=tuple(by_source(rows)),
    )
