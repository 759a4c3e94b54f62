"""Sending commands: `publish issue`, `publish due`, `publish status`."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.app import app, echo, is_tty, settings, when
from pipeline.config import TRANSPORTS

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.outcome import SendResult
    from pipeline.publish import PreparedSend
    from pipeline.send import Progress
    from subscribers.ledger import SendStatus


class Ambiguous(StrEnum):
    resend = "resend"
    skip = "skip"


# Built from TRANSPORTS; mypy cannot see members made from a variable, and needs none.
Transport = StrEnum("Transport", {name: name for name in TRANSPORTS})  # type: ignore[misc]

TransportOption = Annotated[
    Transport | None,
    typer.Option(
        "--transport",
        help=f"{', '.join(TRANSPORTS[:-1])} or {TRANSPORTS[-1]}. Default: delivery.transport.",
    ),
]
RateOption = Annotated[
    float | None,
    typer.Option(
        "--rate",
        min=0.01,
        help="At most N messages per second (never above the SES account's own rate).",
    ),
]


@app.command("issue")
def issue_command(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue file or slug.")],
    transport: TransportOption = None,
    rate: RateOption = None,
    test_to: Annotated[
        str | None,
        typer.Option(
            "--test-to",
            metavar="ADDRESS",
            help="Send only to ADDRESS, [PREVIEW] before the subject; the ledger is untouched.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build every message and send none.")
    ] = False,
    on_ambiguous: Annotated[
        Ambiguous,
        typer.Option(
            "--on-ambiguous",
            help="Recipients an interrupted run may or may not have reached: "
            "resend (a duplicate is better than a miss) or skip.",
        ),
    ] = Ambiguous.resend,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Send an issue to every active subscriber, exactly once; run it again to resume.

    Checks the issue (lint errors stop it), updates the site, then sends
    through the transport at the provider's rate, recording every recipient
    in the ledger. An issue with publish_at in the future is left to
    `publish due`.

    Example: publish issue issues/2026-12-01-calf-stretch.md --transport ses
    """
    from pipeline.issue import find_issue
    from pipeline.publish import SendOptions, prepare_send
    from pipeline.send import stop_on_signals
    from pipeline.sendplan import IssueNotReady

    config = settings(ctx)
    path = find_issue(issue, config.issues_dir)
    options = SendOptions(
        transport=transport.value if transport else None,
        rate=rate,
        on_ambiguous="skip" if on_ambiguous is Ambiguous.skip else "resend",
    )
    try:
        if test_to is not None:
            _send_test(config, path, test_to, options)
            return
        if dry_run:
            _dry_run(config, path)
            return
        prepared = prepare_send(config, path, options)
    except IssueNotReady as exc:
        for finding in exc.findings:
            echo(str(finding), err=True)
        raise

    with prepared:
        plan = prepared.plan
        if plan.scheduled_for is not None:
            echo(
                f"{plan.slug} is scheduled for {when(plan.scheduled_for)}; "
                "`publish due` sends it then (run it from cron every minute)."
            )
            return
        if plan.recipients == 0 and plan.existing is not None and plan.totals is not None:
            echo(_nothing_left(plan.slug, plan.existing.created_at, plan.totals.sent,
                               plan.totals.failed))
            if plan.existing.status != "done":
                _run(prepared)
            return
        if not yes and is_tty() and not _confirm(prepared):
            echo("nothing sent")
            raise typer.Exit(1)
        with stop_on_signals() as stop:
            result = _run(prepared, stop)
    _exit_for(result)


def _confirm(prepared: PreparedSend) -> bool:
    plan = prepared.plan
    what = (
        f"Resume sending {plan.slug!r}: {plan.recipients} recipients left"
        if plan.resuming
        else f"Send {plan.subject!r} to {plan.recipients} subscribers"
    )
    return bool(typer.confirm(f"{what} through {plan.transport}?", default=False))


def _run(prepared: PreparedSend, stop: Any = None) -> SendResult:
    console = _console()
    with _progress_bar(console, prepared.plan.slug, prepared.plan.recipients) as report:
        result = prepared.run(stop=stop, on_progress=report)
    _summary(result)
    return result


def _exit_for(result: SendResult) -> None:
    if result.outcome == "interrupted":
        raise typer.Exit(130)
    if result.outcome in ("stopped", "shared") or result.failed:
        raise typer.Exit(1)


def _send_test(config: Any, path: Path, address: str, options: Any) -> None:
    from pipeline.preview import send_test

    message_id = send_test(config, path, address, options)
    echo(f"sent a [PREVIEW] of {path.name} to {address} ({message_id})")


def _dry_run(config: Any, path: Path) -> None:
    from pipeline.preview import dry_run

    with _progress_bar(_console(), f"dry run {path.name}", 0) as report:
        result = dry_run(config, path, on_progress=report)
    megabytes = result.bytes / 1_000_000
    echo(
        f"dry run: built {result.messages} messages for {result.slug} "
        f"({megabytes:.1f} MB) in {result.seconds:.2f} s; nothing sent"
    )
    if result.failed:
        echo(f"{result.failed} addresses could not be written into a message, e.g.:")
    for problem in result.undeliverable:
        echo(f"  {problem}")


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class _progress_bar:
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
            left=_duration(progress.seconds_left),
        )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _summary(result: SendResult) -> None:
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
        echo(f"{totals.failed} failed: see `publish status {slug}`; "
             "run `publish issue` again to retry them")
    elif result.outcome == "paused":
        until = when(result.paused_until) if result.paused_until else "later"
        echo(f"paused: {result.reason}. It can go on after {until}: `publish due` resumes it "
             "(or run `publish issue` again then)")
    elif result.outcome in ("stopped", "interrupted", "shared"):
        echo(f"{result.outcome}: {result.reason}")


def _nothing_left(slug: str, created: dt.datetime, sent: int, failed: int) -> str:
    return (
        f"{slug} was sent on {when(created)} ({sent} sent, {failed} failed): "
        "nothing left to send"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@app.command()
def due(
    ctx: typer.Context,
    transport: TransportOption = None,
    rate: RateOption = None,
) -> None:
    """Send the scheduled issues whose publish_at has passed; safe from cron every minute.

    Also takes up every unfinished send, scheduled or not: one whose run
    died or was interrupted, one paused by the daily quota once it may go
    on. What it cannot send it names, and exits 1. Overlapping runs never
    send anything twice.

    Example: publish due
    """
    from pipeline.publish import SendOptions
    from pipeline.schedule import send_due
    from pipeline.send import stop_on_signals

    config = settings(ctx)
    options = SendOptions(transport=transport.value if transport else None, rate=rate)

    def starting(item: Any) -> None:
        echo(f"{item.slug}: due since {when(item.publish_at)} ({item.reason})")

    with stop_on_signals() as stop:
        results = send_due(config, options, stop=stop, on_start=starting)
    failed = False
    for item in results:
        if item.result is None:
            echo(f"{item.due.slug}: not sent: {item.error}", err=True)
            failed = True
        else:
            _summary(item.result)
            failed = failed or item.result.outcome in ("stopped", "interrupted", "shared")
    if failed:
        raise typer.Exit(1)


@app.command()
def status(
    ctx: typer.Context,
    issue: Annotated[
        str | None, typer.Argument(help="Issue file or slug. Default: every send.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show where sends stand: totals, failures with reasons, rate and what is left.

    Example: publish status calf-stretch --json
    """
    from pipeline.status import send_statuses

    statuses = send_statuses(settings(ctx), issue)
    if as_json:
        data: Any = [s.as_dict() for s in statuses]
        echo(json.dumps(data[0] if issue else data, indent=2))
        return
    if not statuses:
        echo("no issue has been sent yet")
        return
    if issue is None:
        for item in statuses:
            echo(_one_line(item))
        return
    _details(statuses[0])


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


def _one_line(item: SendStatus) -> str:
    t = item.totals
    going = _next_run(item)
    return (
        f"{item.send.issue_slug:<32} {item.send.status:<8} {t.sent}/{t.total} sent, "
        f"{t.failed} failed, {t.skipped} skipped, {t.left} left  "
        f"(started {when(item.send.created_at)})" + (f"; {going}" if going else "")
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


def _details(item: SendStatus) -> None:
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
    echo(f"recipients: {t.total}: {t.sent} sent, {t.failed} failed, {t.skipped} skipped, "
         f"{t.pending} pending, {t.sending} in flight")
    if item.average_rate:
        echo(f"rate:      {item.average_rate:.1f}/s on average"
             + (f", {item.recent_rate:.1f}/s over the last minute" if item.recent_rate else ""))
    if t.left:
        echo(f"left:      {t.left}" + (f", about {_duration(item.seconds_left)}"
                                       if item.seconds_left else ""))
    if item.events:
        echo(f"feedback:  {_feedback(item.events, t.sent)}")
    if item.workers:
        echo(f"sending now: {', '.join(item.workers)}")
    if item.failures:
        echo("failures:")
        for failure in item.failures:
            examples = ", ".join(failure.examples)
            echo(f"  {failure.count} x {failure.reason}  (e.g. {examples})")
