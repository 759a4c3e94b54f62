"""Authoring commands: `publish new`, `publish check`, `publish preview`."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.app import app, echo, plural, settings, shown

if TYPE_CHECKING:
    from pipeline.checking import CheckReport


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
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Check again each time an issue, picture, template or newsletter.toml "
            "changes, until Ctrl-C; exits as the last check did.",
        ),
    ] = False,
) -> None:
    """Lint issues: one finding a line as path:line: error|warning: message.

    The reader-facing pages (templates/web/pages/) are checked too, and so
    are the confirm and welcome emails (templates/confirm.*, welcome.*).
    Exits 1 when any issue, page or email has an error.

    Example: publish check issues/2026-12-01-calf-stretch.md
    """
    if watch:
        _watch(ctx, issues or ())
        return
    from pipeline.checking import check_newsletter

    report = check_newsletter(settings(ctx), issues or ())
    _reported(report)
    if report.errors:
        raise typer.Exit(1)


def _reported(report: CheckReport) -> None:
    """Print ``report``'s findings and its summary line."""
    for finding in report.findings:
        echo(f"{shown(finding.path)}:{finding.line}: {finding.severity}: {finding.message}")
    echo(
        f"{plural(report.issues, 'issue')} checked: "
        f"{plural(report.errors, 'error')}, {plural(report.warnings, 'warning')}",
        err=True,
    )


def _watch(ctx: typer.Context, issues: Sequence[str]) -> None:
    """`publish check --watch`: report each round; Ctrl-C ends it with the
    last check's status; a change to the code starts this command again,
    as a new process."""
    from pipeline.watching import rounds

    ok = True
    try:
        for done in rounds(lambda: settings(ctx), issues):
            if done.because:
                changed = ", ".join(f"{shown(path)} {verb}" for verb, path in done.because[:3])
                more = len(done.because) - 3
                echo(f"{changed}{f' and {more} more' if more > 0 else ''}", err=True)
            if done.restart:
                echo("the code changed: checking again in a new process", err=True)
                sys.stdout.flush()
                sys.stderr.flush()
                os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 (this command again)
            if done.report is not None:
                ok = not done.report.errors  # before printing: Ctrl-C may come meanwhile
                _reported(done.report)
            else:
                echo(f"error: {done.error}", err=True)
            if not done.because:
                echo("watching for changes (Ctrl-C stops)", err=True)
    except KeyboardInterrupt:
        pass
    if not ok:
        raise typer.Exit(1)


@app.command()
def preview(
    ctx: typer.Context,
    issue: Annotated[str | None, typer.Argument(help="Issue file or slug (unless --page).")] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Folder for the files written. Default: preview/."),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the HTML in a web browser.")
    ] = False,
    page: Annotated[
        str | None,
        typer.Option(
            "--page",
            metavar="NAME",
            help="Write a reader-facing page instead, as page-NAME.html: subscribe, "
            "check-inbox, confirm, confirmed, unsubscribe, unsubscribed, reason or error.",
        ),
    ] = None,
    mail: Annotated[
        str | None,
        typer.Option(
            "--mail",
            metavar="NAME",
            help="Write the confirm or welcome email instead, as NAME.html and NAME.txt.",
        ),
    ] = None,
) -> None:
    """Render an issue as a sample reader would get it: SLUG.html and SLUG.txt.

    With --page NAME, the web service's page NAME instead, as a reader would
    see it, filled with sample values: page-NAME.html. With --mail confirm
    or --mail welcome, that email as a reader just signed up would get it
    (the welcome with the latest issues): NAME.html and NAME.txt.

    Example: publish preview calf-stretch -o /tmp/preview --open
    """
    from pipeline.errors import PublishError

    config = settings(ctx)
    folder = output or config.preview_dir
    if mail is not None:
        if issue is not None or page is not None:
            raise PublishError("give one of an issue, --page and --mail")
        from pipeline.mail_preview import write_mail_preview

        written = list(write_mail_preview(config, mail, folder))
    elif page is not None:
        if issue is not None:
            raise PublishError("give an issue or --page, not both")
        from pipeline.reader_pages import write_page_preview

        written = [write_page_preview(config, page, folder)]
    elif issue is None:
        raise PublishError("give an issue to preview, or --page NAME, or --mail NAME")
    else:
        from pipeline.authoring import write_preview
        from pipeline.context import Context
        from pipeline.issue import find_issue

        path = find_issue(issue, config.issues_dir)
        written = list(write_preview(Context.load(config, [path]), path, folder))
    for path in written:
        echo(shown(path))
    if open_browser:
        import webbrowser

        webbrowser.open(written[0].resolve().as_uri())
