"""Sending commands: `publish issue`, `publish due`, `publish status`.

Each parses its flags, builds Settings, calls the library
(:mod:`pipeline.publish`, :mod:`pipeline.schedule`, :mod:`pipeline.status`)
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
    print_status,
    print_summary,
    progress_bar,
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


def _send_test(config: Any, path: Path, address: str, options: Any) -> None:
    from pipeline.preview import send_test

    message_id = send_test(config, path, address, options)
    echo(f"sent a [PREVIEW] of {path.name} to {address} ({message_id})")


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
        if item.result is None:
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
            echo(status_line(item))
        return
    print_status(statuses[0])
