"""Sending commands: `publish issue`, `publish due`, `publish status`,
`publish schedule`, `publish unschedule`.

Each parses its flags, builds Settings, calls the library
(:mod:`pipeline.publish`, :mod:`pipeline.preview`, :mod:`pipeline.schedule`,
:mod:`pipeline.status`, :mod:`pipeline.schedule_list`, :mod:`pipeline.unschedule`)
and reports what it did; the progress bar and the wording of summaries and
statuses are in :mod:`pipeline.cli.send_reports`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.app import app, echo, is_tty, settings, when
from pipeline.cli.send_reports import (
    console,
    nothing_left,
    print_scheduled,
    print_status,
    print_summary,
    progress_bar,
    schedule_line,
    scheduled_line,
    status_line,
)
from pipeline.config import TRANSPORTS

if TYPE_CHECKING:
    from pipeline.outcome import SendResult
    from pipeline.publish import PreparedSend


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
        list[str] | None,
        typer.Option(
            "--test-to",
            metavar="ADDRESS",
            help="Send only to ADDRESS, [PREVIEW] before the subject; the ledger is untouched. "
            "Repeat it, or separate addresses with commas, for several.",
        ),
    ] = None,
    test: Annotated[
        bool,
        typer.Option(
            "--test", help="Send the [PREVIEW] to sender.test_recipients (--test-to overrides)."
        ),
    ] = False,
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
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
    from pipeline.sendplan import IssueNotReady
    from pipeline.signals import stop_on_signals

    config = settings(ctx)
    path = find_issue(issue, config.issues_dir)
    options = SendOptions(
        transport=transport.value if transport else None,
        rate=rate,
        on_ambiguous="skip" if on_ambiguous is Ambiguous.skip else "resend",
    )
    try:
        if test_to or test:
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
            echo(
                nothing_left(
                    plan.slug, plan.existing.created_at, plan.totals.sent, plan.totals.failed
                )
            )
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
    with progress_bar(console(), prepared.plan.slug, prepared.plan.recipients) as report:
        result = prepared.run(stop=stop, on_progress=report)
    print_summary(result)
    return result


def _exit_for(result: SendResult) -> None:
    if result.outcome == "interrupted":
        raise typer.Exit(130)
    if result.outcome in ("stopped", "shared") or result.failed:
        raise typer.Exit(1)


def _send_test(config: Any, path: Path, test_to: list[str] | None, options: Any) -> None:
    from pipeline.errors import ConfigError
    from pipeline.preview import send_test

    if test_to:
        addresses, source = test_to, "--test-to"
    elif config.test_recipients:
        addresses, source = list(config.test_recipients), "sender.test_recipients"
    else:
        raise ConfigError(
            "--test: sender.test_recipients is empty: list the addresses in newsletter.toml "
            "(or NEWSLETTER_TEST_RECIPIENTS), or give --test-to ADDRESS"
        )

    def sent(address: str, message_id: str) -> None:
        echo(f"sent a [PREVIEW] of {path.name} to {address} ({message_id})")

    send_test(config, path, addresses, options, source=source, on_sent=sent)


def _dry_run(config: Any, path: Path) -> None:
    from pipeline.preview import dry_run

    with progress_bar(console(), f"dry run {path.name}", 0) as report:
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
    from pipeline.signals import stop_on_signals

    config = settings(ctx)
    options = SendOptions(transport=transport.value if transport else None, rate=rate)

    def starting(item: Any) -> None:
        echo(f"{item.slug}: due since {when(item.publish_at)} ({item.reason})")

    with stop_on_signals() as stop:
        results = send_due(config, options, stop=stop, on_start=starting)
    failed = False
    for item in results:
        if item.passed:
            echo(f"{item.due.slug}: {item.passed}")
        elif item.result is None:
            echo(f"{item.due.slug}: not sent: {item.error}", err=True)
            failed = True
        else:
            print_summary(item.result)
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

    The issues scheduled whose send has not begun are shown too, each with
    the time it goes. With ISSUE, its headline figures too: delivered,
    bounce and complaint rates, unsubscribes and the top 3 links (when
    tracking is on), and a warning for a rate near or over SES's or Gmail's
    limit (in colour on a terminal).

    Example: publish status calf-stretch --json
    """
    from pipeline.status import status_overview

    overview = status_overview(settings(ctx), issue)
    if as_json:
        data: Any = [entry.as_dict() for entry in overview.scheduled]
        data += [item.as_dict() for item in overview.sends]
        if issue is not None and not overview.scheduled and overview.headline is not None:
            data[0] = {**data[0], "headline": overview.headline.as_dict()}
        echo(json.dumps(data[0] if issue else data, indent=2))
        return
    if not overview.sends and not overview.scheduled:
        echo("no issue has been sent yet")
        return
    if issue is None:
        for entry in overview.scheduled:
            echo(scheduled_line(entry))
        for item in overview.sends:
            echo(status_line(item))
        return
    if overview.scheduled:
        print_scheduled(overview.scheduled[0])
    else:
        print_status(overview.sends[0], overview.headline)


@app.command()
def schedule(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the scheduled issues not yet sent, soonest first, with when each goes.

    Each shows its time in UTC and as its publish_at has it, and its state:
    waiting, due now (the next publish due sends it), sending (its send
    began) or refused with the reason publish due would not send it.

    Example: publish schedule --json
    """
    from pipeline.schedule_list import load_schedule

    entries = load_schedule(settings(ctx))
    if as_json:
        echo(json.dumps([entry.as_dict() for entry in entries], indent=2))
        return
    if not entries:
        echo("nothing is scheduled")
    for entry in entries:
        echo(schedule_line(entry))


@app.command()
def unschedule(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue file or slug.")],
) -> None:
    """Cancel a scheduled issue whose send has not begun: its publish_at becomes a comment.

    The line is kept as `# publish_at: ...  # unscheduled <when>`; take the
    leading `# ` away to schedule it again. An issue whose send began, or
    that has no publish_at, is refused.

    Example: publish unschedule sore-shoulders-after-gardening
    """
    from pipeline.unschedule import unschedule as unschedule_issue

    done = unschedule_issue(settings(ctx), issue)
    echo(
        f"unscheduled {done.slug}: publish_at {done.written} is now a comment in {done.path}; "
        "remove its leading '# ' to schedule it again"
    )
