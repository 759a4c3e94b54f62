"""How the sending commands print: a progress bar on standard error, summaries, statuses.

    publish issue, publish due ──> progress_bar: a Rich bar fed by the send
                                   loop's callback (a terminal only);
                                   print_summary: what the run did, what is left
    publish status             ──> status_line: one line a send (and why
                                   readers it reached last left);
                                   print_status: one send in full, with the
                                   feedback SES reported, the failures and
                                   the leaving readers' reasons and words;
                                   print_headline: its headline figures,
                                   a rate near or over a limit in colour
                                   on a terminal;
                                   scheduled_line, print_scheduled: an issue
                                   waiting for its time
    publish schedule           ──> schedule_line: one line a scheduled issue

Everything shown that a stranger may have written (an address, a provider's
error) goes through :func:`~pipeline.cli.app.echo`, which writes control
characters out.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pipeline.cli.app import echo, printable, when

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.outcome import SendResult
    from pipeline.progress import Progress
    from pipeline.report.data import IssueFigures
    from pipeline.schedule_list import ScheduleEntry
    from subscribers.ledger import SendStatus
    from subscribers.ledger.departures import Departures


def console() -> Console:
    """Where the progress bar draws: standard error, so that the summary on
    standard output stays clean for a pipe."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class progress_bar:
    """A Rich progress bar fed by the send loop's callback (a TTY only)."""

    def __init__(self, console: Console, slug: str, total: int) -> None:
        self.console = console
        self.slug = slug
        self.total = total
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, Progress, TextColumn

        if not self.console.is_terminal:
            return None
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("sent {task.fields[sent]}  failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}/s  {task.fields[left]} left"),
            console=self.console,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(
            self.slug, total=self.total or None, sent=0, failed=0, rate="0", left="?"
        )
        return self.update

    def update(self, progress: Progress) -> None:
        self.bar.update(
            self.task,
            total=progress.total,
            completed=progress.done,
            sent=progress.sent,
            failed=progress.failed,
            rate=f"{progress.rate:.0f}",
            left=duration(progress.seconds_left),
        )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def print_summary(result: SendResult) -> None:
    totals = result.totals
    slug = result.send.issue_slug
    if result.resumed and result.resumed.settled:
        echo(
            f"{result.resumed.settled} recipients a stopped run had sent were found in "
            f"the {result.send.transport}'s records and recorded as sent"
        )
    if result.resumed and result.resumed.ambiguous:
        action = "sent again" if result.resumed.ambiguous_action == "resend" else "skipped"
        echo(
            f"{result.resumed.ambiguous} recipients were in flight when a previous run "
            f"stopped; they were {action} (--on-ambiguous)"
        )
    if result.resumed and result.resumed.retried:
        echo(f"{result.resumed.retried} recipients that failed before were tried again")
    rate = f" ({result.rate:.1f}/s)" if result.sent and result.seconds else ""
    echo(
        f"{slug}: sent {result.sent}, failed {result.failed}, skipped {result.skipped} "
        f"in {result.seconds:.{1 if result.seconds >= 10 else 2}f} s{rate}"
    )
    echo(
        f"{slug} overall: {totals.sent} sent, {totals.failed} failed, "
        f"{totals.skipped} skipped, {totals.left} left of {totals.total}"
    )
    if result.outcome == "done" and totals.failed:
        echo(
            f"{totals.failed} failed: see `publish status {slug}`; "
            "run `publish issue` again to retry them"
        )
    elif result.outcome == "paused":
        until = when(result.paused_until) if result.paused_until else "later"
        echo(
            f"paused: {result.reason}. It can go on after {until}: `publish due` resumes it "
            "(or run `publish issue` again then)"
        )
    elif result.outcome in ("stopped", "interrupted", "shared"):
        echo(f"{result.outcome}: {result.reason}")


def nothing_left(slug: str, created: dt.datetime, sent: int, failed: int) -> str:
    return (
        f"{slug} was sent on {when(created)} ({sent} sent, {failed} failed): nothing left to send"
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


_FEEDBACK = (
    ("delivered", "delivered"),
    ("bounced", "bounced"),
    ("soft_bounced", "soft-bounced"),
    ("bounce_undetermined", "undetermined bounces"),
    ("complained", "complained"),
)


def _feedback(events: dict[str, int], sent: int) -> str:
    """``950 delivered (95.0%), 3 bounced (0.3%), 1 complained (0.1%)``: what
    SES reported about the send's messages, as shares of those sent."""
    parts = []
    for kind, label in _FEEDBACK:
        count = events.get(kind, 0)
        if count or kind in ("delivered", "bounced", "complained"):
            share = f" ({count / sent:.1%})" if sent else ""
            parts.append(f"{count} {label}{share}")
    return ", ".join(parts)


def _reasons(departures: Departures) -> str:
    """``2 too often, 1 other (1 comment)``: why readers left, the reasons
    no one gave left out; "" when no one gave one."""
    parts = [
        f"{count} {reason.replace('_', ' ')}"
        for reason, count in departures.reasons.items()
        if count
    ]
    if not parts:
        return ""
    comments = len(departures.comments)
    said = f" ({comments} comment{'' if comments == 1 else 's'})" if comments else ""
    return ", ".join(parts) + said


def status_line(item: SendStatus) -> str:
    t = item.totals
    going = _next_run(item)
    left = _reasons(item.departures)
    return (
        f"{item.send.issue_slug:<32} {item.send.status:<8} {t.sent}/{t.total} sent, "
        f"{t.failed} failed, {t.skipped} skipped, {t.left} left  "
        f"(started {when(item.send.created_at)})"
        + (f"; {going}" if going else "")
        + (f"; left because: {left}" if left else "")
    )


def _next_run(item: SendStatus) -> str:
    """When the rest of an unfinished send will go, and what takes it up."""
    send, left = item.send, item.totals.left
    if send.status == "paused":
        if send.paused_until is None:
            return f"{left} left: the next publish due resumes it"
        return f"{left} left: publish due resumes it from {when(send.paused_until)}"
    if send.status in ("sending", "interrupted") and left and not item.workers:
        return f"{left} left by a run that stopped: the next publish due resumes it"
    return ""


def print_status(item: SendStatus, headline: IssueFigures | None = None) -> None:
    send, t = item.send, item.totals
    echo(f"issue:     {send.issue_slug} ({send.issue_path})")
    echo(f"subject:   {send.subject}")
    echo(f"status:    {send.status}" + (f" ({send.note})" if send.note else ""))
    echo(f"transport: {send.transport}")
    echo(f"started:   {when(send.created_at)}")
    if send.finished_at:
        echo(f"finished:  {when(send.finished_at)}")
    if send.paused_until:
        echo(f"paused until: {when(send.paused_until)}")
    going = _next_run(item)
    if going:
        echo(f"next:      {going}")
    echo(
        f"recipients: {t.total}: {t.sent} sent, {t.failed} failed, {t.skipped} skipped, "
        f"{t.pending} pending, {t.sending} in flight"
    )
    if headline is not None:
        print_headline(headline)
    if item.average_rate:
        echo(
            f"rate:      {item.average_rate:.1f}/s on average"
            + (f", {item.recent_rate:.1f}/s over the last minute" if item.recent_rate else "")
        )
    if t.left:
        echo(
            f"left:      {t.left}"
            + (f", about {duration(item.seconds_left)}" if item.seconds_left else "")
        )
    if item.events:
        echo(f"feedback:  {_feedback(item.events, t.sent)}")
    left = _reasons(item.departures)
    if left:
        echo(f"left because: {left}")
        for comment in item.departures.comments:
            echo(f"  \u201c{comment}\u201d")
    if item.workers:
        echo(f"sending now: {', '.join(item.workers)}")
    if item.failures:
        echo("failures:")
        for failure in item.failures:
            examples = ", ".join(failure.examples)
            echo(f"  {failure.count} x {failure.reason}  (e.g. {examples})")


_COLOURS = {"near": "yellow", "over": "red"}
TOP_LINKS = 3


def print_headline(figures: IssueFigures) -> None:
    """``headline:  98.00% delivered, 1.00% bounced, ...``, the top links and
    a warning for each rate near (half a limit or more) or over a limit,
    coloured only where standard output is a terminal."""
    import typer

    from pipeline.report.limits import percent

    delivered = (
        f"{percent(figures.delivered_rate)} delivered"
        if figures.delivered
        else "delivered not reported yet"
    )
    echo(
        f"headline:  {delivered}, {percent(figures.bounce_rate)} bounced, "
        f"{percent(figures.complaint_rate)} complained, {figures.unsubscribed} unsubscribed"
        + (f" ({percent(figures.unsubscribe_rate)})" if figures.sent else "")
    )
    engaged = figures.engagement
    if engaged is None:
        echo("top links: tracking is off (tracking.enabled)")
    elif not engaged.links:
        echo("top links: no clicks counted yet")
    else:
        for index, link in enumerate(engaged.links[:TOP_LINKS]):
            label = "top links:" if index == 0 else ""
            echo(f"{label:<10} {link.clicks} clicks ({link.unique} unique)  {link.url}")
    for level, words in figures.warnings:
        bold = True if level == "over" else None
        typer.secho(printable(f"warning:   {words}"), fg=_COLOURS[level], bold=bold)


def _goes(entry: ScheduleEntry) -> str:
    """``2027-01-05 06:00 UTC (2027-01-05T07:00:00+01:00)``: when it goes, in
    UTC and as its publish_at has it."""
    if entry.publish_at is None:
        return f"at an unreadable time ({entry.written or 'unknown'})"
    return f"{when(entry.publish_at)} ({entry.written})"


def schedule_line(entry: ScheduleEntry) -> str:
    return f"{entry.slug:<32} {_goes(entry)}  {entry.path}  {entry.shown_state}"


def scheduled_line(entry: ScheduleEntry) -> str:
    return f"{entry.slug:<32} {'scheduled':<8} to go {_goes(entry)}: {entry.shown_state}"


def print_scheduled(entry: ScheduleEntry) -> None:
    echo(f"issue:     {entry.slug} ({entry.path})")
    echo("status:    scheduled, never sent")
    echo(f"goes:      {_goes(entry)}")
    echo(f"state:     {entry.shown_state}")
