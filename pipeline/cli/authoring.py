"""Authoring commands: `publish new`, `publish check`, `publish preview`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.app import app, echo, plural, settings, shown


@app.command()
def new(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="The issue's title.")],
    date: Annotated[
        str | None,
        typer.Option("--date", help="Issue date as YYYY-MM-DD. Default: today."),
    ] = None,
) -> None:
    """Write a dated skeleton issue into issues/, never overwriting one.

    Example: publish new "An easy stretch for chronic calf pain" --date 2026-12-01
    """
    from pipeline.authoring import new_issue
    from pipeline.errors import PublishError

    try:
        day = dt.date.fromisoformat(date) if date else dt.date.today()
    except ValueError:
        raise PublishError(f"--date: {date!r} is not a date like 2026-12-01") from None
    path = new_issue(settings(ctx), title, day)
    echo(f"wrote {shown(path)}")


@app.command()
def check(
    ctx: typer.Context,
    issues: Annotated[
        list[str] | None,
        typer.Argument(help="Issue files or slugs. Default: every issue in issues/."),
    ] = None,
) -> None:
    """Lint issues: one finding a line as path:line: error|warning: message.

    Exits 1 when any issue has an error.

    Example: publish check issues/2026-12-01-calf-stretch.md
    """
    from pipeline.context import Context
    from pipeline.issue import Finding, find_issue
    from pipeline.lint import check_issue

    config = settings(ctx)
    given = [find_issue(name, config.issues_dir) for name in issues or ()]
    context = Context.load(config, given)
    paths = given or list(context.issues.paths)
    errors = warnings = 0
    reported: set[Finding] = set()
    for path in paths:
        result = check_issue(path, context)
        # A template's findings come with every issue; each is shown once.
        for finding in result.findings:
            if finding in reported:
                continue
            reported.add(finding)
            echo(f"{shown(finding.path)}:{finding.line}: {finding.severity}: {finding.message}")
            if finding.severity == "error":
                errors += 1
            else:
                warnings += 1
    echo(
        f"{plural(len(paths), 'issue')} checked: "
        f"{plural(errors, 'error')}, {plural(warnings, 'warning')}",
        err=True,
    )
    if errors:
        raise typer.Exit(1)


@app.command()
def preview(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue file or slug.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Folder for SLUG.html and SLUG.txt. Default: preview/."
        ),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the HTML in a web browser.")
    ] = False,
) -> None:
    """Render an issue as a sample reader would get it: SLUG.html and SLUG.txt.

    Example: publish preview calf-stretch -o /tmp/preview --open
    """
    from pipeline.authoring import write_preview
    from pipeline.context import Context
    from pipeline.issue import find_issue

    config = settings(ctx)
    path = find_issue(issue, config.issues_dir)
    html_path, text_path = write_preview(
        Context.load(config, [path]), path, output or config.preview_dir
    )
    echo(shown(html_path))
    echo(shown(text_path))
    if open_browser:
        import webbrowser

        webbrowser.open(html_path.resolve().as_uri())
