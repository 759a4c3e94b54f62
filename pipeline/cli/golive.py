"""Going live: `publish setup ses`."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.app import app, echo, settings

INTERRUPTED = "interrupted: nothing is lost; run publish setup ses again to finish"

setup_app = typer.Typer(
    name="setup",
    help="Wire the newsletter to the services it sends and listens through.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(setup_app)


@setup_app.command("ses")
def ses(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")
    ] = False,
    webhook: Annotated[
        bool,
        typer.Option(
            "--webhook",
            help="Deliver events to https://SITE/ses/events (publish serve) instead of an "
            "SQS queue.",
        ),
    ] = False,
    receive: Annotated[
        bool,
        typer.Option(
            "--receive",
            help="Receive unsubscribe mail at list.DOMAIN (sender.unsubscribe_domain).",
        ),
    ] = False,
    region: Annotated[
        str | None,
        typer.Option("--region", metavar="REGION", help="The AWS region. Default: boto3's."),
    ] = None,
    dmarc_report: Annotated[
        str | None,
        typer.Option(
            "--dmarc-report",
            metavar="ADDRESS",
            help="Where DMARC reports go. Default: sender.reply_to.",
        ),
    ] = None,
    nameserver: Annotated[
        str | None,
        typer.Option(
            "--nameserver",
            metavar="IP[:PORT]",
            help="Ask this name server whether a DMARC policy already covers the domain. "
            "Default: the system's.",
        ),
    ] = None,
) -> None:
    """Set up Amazon SES for the newsletter's domain, and its events.

    Creates what is missing, in the region: the domain identity with Easy
    DKIM, the MAIL FROM domain bounce.DOMAIN, a configuration set whose
    events (sends, deliveries, bounces, complaints, rejects, rendering
    failures) go to an SNS topic, and an SQS queue subscribed to the topic
    with a dead-letter queue (--webhook: SITE/ses/events subscribed
    instead). Writes their names into newsletter.toml and prints the DNS
    records to add. Safe to run again: a second run changes nothing.

    Example: publish setup ses --dry-run
    """
    from pipeline.golive.setup import Options, setup_ses
    from pipeline.golive.setup_report import report_lines

    config = settings(ctx)
    options = Options(region=region, webhook=webhook, receive=receive, dry_run=dry_run,
                      dmarc_report=dmarc_report or "", nameserver=nameserver or "")
    try:
        outcome = setup_ses(config, options, on_step=echo)
    except KeyboardInterrupt:
        echo(INTERRUPTED, err=True)
        raise typer.Exit(130) from None
    for line in report_lines(outcome, config):
        echo(line)
