"""`publish report`: the list and its issues in figures and charts, one HTML
file (:mod:`pipeline.report`), or the same figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.app import app, echo, plural, settings, shown
from pipeline.report.build import DEFAULT_WEEKS, MAX_WEEKS

REPORT_FILE = "report.html"


@app.command()
def report(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help=f"The HTML file to write. Default: {REPORT_FILE} in the preview folder "
            "(paths.preview).",
        ),
    ] = None,
    weeks: Annotated[
        int,
        typer.Option(
            "--weeks", min=1, max=MAX_WEEKS, help="How many weeks of the list's history to show."
        ),
    ] = DEFAULT_WEEKS,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report's figures as JSON; write no file.")
    ] = False,
) -> None:
    """Write a report of the list and its issues: one HTML file with charts, nothing to fetch.

    It shows the list week by week (active subscribers; signups,
    confirmations, unsubscribes, bounces and complaints), each issue's
    sent, delivered, bounce, complaint and unsubscribe rates with the
    reasons readers gave, opens, clicks and top links when tracking is on,
    the bounce and complaint rates against SES's and Gmail's limits, and
    where signups came from. Every chart has a text alternative and a table
    of its data under it.

    Example: publish report -o report.html
    """
    from pipeline.report.build import load_report, write_report

    config = settings(ctx)
    figures = load_report(config, weeks=weeks)
    if as_json:
        echo(json.dumps(figures.as_dict(), indent=2))
        return
    path = write_report(figures, output or config.preview_dir / REPORT_FILE)
    echo(
        f"wrote {shown(path)}: {plural(len(figures.issues), 'issue')}, "
        f"{plural(len(figures.weeks), 'week')} of the list; open it in any browser"
    )
