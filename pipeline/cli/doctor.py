"""Going live, checked: `publish doctor`."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.app import app, echo, plural, settings


@app.command()
def doctor(
    ctx: typer.Context,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also mail SES's mailbox simulator and wait for the delivery, bounce "
            "and complaint to come back through the events path.",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=1,
            help="How long --live waits for the notifications.",
        ),
    ] = 120.0,
    nameserver: Annotated[
        str | None,
        typer.Option(
            "--nameserver",
            metavar="IP[:PORT]",
            help="Ask this name server for the DNS records. Default: the system's.",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region", metavar="REGION", help="The SES region. Default: boto3's (AWS_REGION)."
        ),
    ] = None,
) -> None:
    """Check that the newsletter is ready to send through Amazon SES.

    Checks the settings (https site, token secret, postal address,
    configuration set, events path), the SES account (identity, DKIM, MAIL
    FROM, sandbox and quota, the configuration set's event destination, the
    SNS topic, its subscription, the SQS queue, the unsubscribe receipt rule)
    and DNS (DKIM, SPF, MAIL FROM MX, DMARC, the receiving MX). One line per
    finding, each problem with its fix; exit status 1 on any error. Changes
    nothing, except that --live sends three messages to SES's mailbox
    simulator and, with events.queue_url, applies what waits on the queue as
    `publish events sync` does.

    Example: publish doctor --live --timeout 300
    """
    from pipeline.golive.doctor import run_doctor

    config = settings(ctx)
    findings = run_doctor(
        config, region=region, nameserver=nameserver or "", live=live, timeout=timeout
    )
    for finding in findings:
        echo(finding.line())
    errors = sum(1 for finding in findings if finding.level == "error")
    warnings = sum(1 for finding in findings if finding.level == "warning")
    echo(
        f"{plural(len(findings), 'check')}: {plural(errors, 'error')}, "
        f"{plural(warnings, 'warning')}"
    )
    if errors:
        raise typer.Exit(1)
