"""`publish worker`: one of any number of senders that share every due send
and the account's rate (:mod:`pipeline.worker`).

It parses its flags, builds Settings, refuses a database other machines
cannot share, then calls :func:`pipeline.worker.serve_sends` until SIGTERM or
Ctrl-C, reporting each send it takes up as `publish due` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.app import app, echo, settings, when
from pipeline.cli.send_reports import print_summary
from pipeline.cli.sending import RateOption, TransportOption
from pipeline.worker import POLL_SECONDS

if TYPE_CHECKING:
    from pipeline.schedule import Due, DueResult


@app.command()
def worker(
    ctx: typer.Context,
    transport: TransportOption = None,
    rate: RateOption = None,
    poll: Annotated[
        float,
        typer.Option("--poll", min=0.1, help="Seconds between looks for a due send when idle."),
    ] = POLL_SECONDS,
) -> None:
    """Serve every due send with the other workers, sharing the account's rate; PostgreSQL only.

    Runs until SIGTERM or Ctrl-C. It sends what `publish due` would send
    and joins the sends other workers are sending; together they never
    exceed the account's MaxSendRate in any second, each taking slots from
    a budget in the database, so none is given its share by hand. A worker
    that dies loses only its lease: the others take its recipients back.
    Stopped, it finishes the calls in flight and releases the rest.

    Example: publish worker --poll 2
    """
    from pipeline.publish import SendOptions
    from pipeline.signals import stop_on_signals
    from pipeline.worker import check_database, serve_sends

    config = settings(ctx)
    check_database(config)
    options = SendOptions(transport=transport.value if transport else None, rate=rate)

    def starting(item: Due) -> None:
        how = "joining the workers sending it" if item.reason == "join" else item.reason
        echo(f"{item.slug}: due since {when(item.publish_at)} ({how})")

    def finished(item: DueResult) -> None:
        if item.passed:
            echo(f"{item.due.slug}: {item.passed}")
        elif item.result is None:
            echo(f"{item.due.slug}: not sent: {item.error}", err=True)
        else:
            print_summary(item.result)

    with stop_on_signals() as stop:
        report = serve_sends(config, options, stop, poll=poll, on_start=starting,
                             on_result=finished)
    echo(f"worker stopped: {report.sent} sent, {report.failed} failed in {report.runs} runs")
