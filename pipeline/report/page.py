"""The report as one self-contained HTML page: the charts of
:mod:`pipeline.report.charts`, each with its text alternative and the table
of its data under it, filled into ``report.html.j2`` beside this module.

    render_report(report) ──▶ str     no script, no font, no stylesheet or
                                      picture to fetch: it opens the same
                                      from a disk, a mail attachment or a server

Pure: the template is read from the package, nothing else is touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pipeline.report.charts import Bar, Limit, bar_chart, line_chart, row_chart
from pipeline.report.data import MEASURES, IssueFigures, Report, Week
from pipeline.report.limits import (
    BOUNCE_THRESHOLDS,
    COMPLAINT_THRESHOLDS,
    Judgement,
    Threshold,
    percent,
)

TEMPLATE = "report.html.j2"
MEASURE_TITLES = {
    "signups": "Signups",
    "confirmations": "Confirmations",
    "unsubscribes": "Unsubscribes",
    "bounces": "Bounces",
    "complaints": "Complaints",
}


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE)


def short(day: dt.date) -> str:
    """``1 Dec``: a chart's label for a week or an issue."""
    return f"{day.day} {day:%b}"


def count(value: float) -> str:
    return f"{value:.0f}"


def _rate_label(value: float) -> str:
    """``5%``, ``0.1%``, ``2.5%``: a line's or an axis tick's rate."""
    return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"


def render_report(report: Report) -> str:
    """The page for ``report``."""
    return _template().render(
        report=report,
        weekly=_weekly(report.weeks),
        bounce_chart=_rate_chart(
            "bounce-rate",
            "Bounce rate per issue",
            report.issues,
            lambda issue: issue.bounce_rate,
            lambda issue: issue.bounce,
            BOUNCE_THRESHOLDS,
        ),
        complaint_chart=_rate_chart(
            "complaint-rate",
            "Complaint rate per issue",
            report.issues,
            lambda issue: issue.complaint_rate,
            lambda issue: issue.complaint,
            COMPLAINT_THRESHOLDS,
        ),
        unsubscribe_chart=_plain_rate_chart(
            "unsubscribe-rate",
            "Unsubscribe rate per issue",
            report.issues,
            lambda issue: issue.unsubscribe_rate,
        ),
        open_chart=_plain_rate_chart(
            "open-rate",
            "Unique open rate per issue (a rough figure)",
            report.issues,
            lambda issue: issue.open_rate,
        )
        if report.tracking
        else None,
        sources_chart=_sources_chart(report),
        percent=percent,
        short=short,
        reasons=_reasons,
        levels=_levels,
    )


def _span(days: Sequence[dt.date]) -> str:
    return f"from the week of {days[0]:%d %B %Y} to the week of {days[-1]:%d %B %Y}"


def _weekly(weeks: Sequence[Week]) -> list[tuple[str, Markup]]:
    """The active line, then a column chart per measure, each with its title."""
    if not weeks:
        return []
    days = [week.start for week in weeks]
    actives = [week.active for week in weeks]
    most = max(range(len(weeks)), key=lambda i: actives[i])
    active_title = "Active subscribers at the end of each week"
    charts = [
        (
            active_title,
            line_chart(
                "weekly-active",
                active_title,
                f"Active subscribers at the end of each week, {_span(days)}: {actives[0]} in the "
                f"first week, {actives[-1]} now; at most {actives[most]}, in the week of "
                f"{days[most]:%d %B %Y}.",
                [(short(week.start), week.active) for week in weeks],
                fmt=count,
                height=180,
            ),
        )
    ]
    for measure in MEASURES:
        values = [getattr(week, measure) for week in weeks]
        peak = max(range(len(weeks)), key=lambda i: values[i])
        busiest = (
            f"; most in the week of {days[peak]:%d %B %Y} ({values[peak]})" if values[peak] else ""
        )
        title = f"{MEASURE_TITLES[measure]} per week"
        charts.append(
            (
                title,
                bar_chart(
                    f"weekly-{measure}",
                    title,
                    f"{MEASURE_TITLES[measure]} per week, {_span(days)}: {sum(values)} in all"
                    f"{busiest}.",
                    [
                        Bar(short(week.start), value)
                        for week, value in zip(weeks, values, strict=True)
                    ],
                    fmt=count,
                    whole=True,
                    height=180,
                ),
            )
        )
    return charts


def _rate_chart(
    key: str,
    title: str,
    issues: Sequence[IssueFigures],
    rate: Callable[[IssueFigures], float | None],
    judged: Callable[[IssueFigures], Judgement],
    thresholds: Sequence[Threshold],
) -> Markup | None:
    """An issue's rate per column, against the limits it is held to."""
    if not issues:
        return None
    values = [rate(issue) or 0.0 for issue in issues]
    bars = [
        Bar(short(issue.sent_on), value, judged(issue).level)
        for issue, value in zip(issues, values, strict=True)
    ]
    lines = [
        Limit(t.rate, f"{t.name} {_rate_label(t.rate)}", any(v >= t.rate for v in values))
        for t in thresholds
    ]
    highest = max(range(len(issues)), key=lambda i: values[i])
    said = [
        f"{sum(1 for v in values if v >= t.rate)} of {len(issues)} over the {t.name} line "
        f"({_rate_label(t.rate)})"
        for t in thresholds
    ]
    near = sum(1 for bar in bars if bar.level == "near")
    desc = (
        f"{title}, {len(issues)} issues from {issues[0].sent_on:%d %B %Y}: highest "
        f"{percent(values[highest])} ({issues[highest].slug}); {'; '.join(said)}; "
        f"{near} near a line (at least half of it)."
    )
    return bar_chart(key, title, desc, bars, fmt=_rate_label, lines=lines)


def _plain_rate_chart(
    key: str,
    title: str,
    issues: Sequence[IssueFigures],
    rate: Callable[[IssueFigures], float | None],
) -> Markup | None:
    if not issues:
        return None
    values = [rate(issue) or 0.0 for issue in issues]
    highest = max(range(len(issues)), key=lambda i: values[i])
    desc = (
        f"{title}, {len(issues)} issues from {issues[0].sent_on:%d %B %Y}: highest "
        f"{percent(values[highest])} ({issues[highest].slug}), latest {percent(values[-1])}."
    )
    bars = [Bar(short(issue.sent_on), value) for issue, value in zip(issues, values, strict=True)]
    return bar_chart(key, title, desc, bars, fmt=_rate_label)


def _sources_chart(report: Report) -> Markup | None:
    if not report.sources:
        return None
    rows = [(line.source, float(line.readers)) for line in report.sources]
    listed = ", ".join(f"{line.source} {line.readers}" for line in report.sources)
    return row_chart(
        "signup-sources",
        "Subscribers by where they signed up",
        f"Subscribers by the source kept with their consent: {listed}.",
        rows,
        fmt=count,
    )


def _reasons(reasons: dict[str, int]) -> str:
    """``2 too often, 1 other``; "" when no one said."""
    return ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in reasons.items() if n)


def _levels(judgement: Judgement) -> dict[str, Any]:
    """What a table cell says of a rate's standing: its class and words."""
    if judgement.threshold is None:
        return {"level": "ok", "words": "under half of every line"}
    return {
        "level": judgement.level,
        "words": f"{judgement.level} the {judgement.threshold.name} line "
        f"({_rate_label(judgement.threshold.rate)})",
    }
