"""The public side: `publish site`, `publish draft`, `publish deploy`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from pipeline.cli.app import app, echo, plural, settings, shown


@app.command("site")
def site_command(ctx: typer.Context) -> None:
    """Build the static site in public/: issue pages, archive, feeds, subscribe page.

    Publishes every issue that was sent or whose publish_at has passed;
    drafts stay off the site. Files whose content is unchanged are not
    rewritten; when nothing the last build was made from changed, nothing
    is read or rendered at all.

    Example: publish site
    """
    from pipeline.rebuild import publish_site

    report = publish_site(settings(ctx), dt.datetime.now(dt.UTC))
    for warning in report.warnings:
        echo(f"warning: {warning}", err=True)
    echo(
        f"{plural(len(report.issues), 'issue')} published, "
        f"{plural(len(report.drafts), 'draft')} left out; "
        f"{plural(len(report.written), 'file')} written, {report.unchanged} unchanged, "
        f"{len(report.removed)} removed in {shown(report.public_dir)}"
    )


@app.command()
def draft(
    ctx: typer.Context,
    from_feed: Annotated[
        str,
        typer.Option("--from-feed", help="The blog's RSS or Atom feed: a URL or a file."),
    ],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only posts published on or after this date (YYYY-MM-DD)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many posts, newest first.")
    ] = 5,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1, help="Seconds the whole fetch may take, redirects included."
        ),
    ] = 15.0,
) -> None:
    """Draft an issue in issues/ that introduces the newest posts of the blog's feed.

    Example: publish draft --from-feed https://painfreeliving.example.com/blog/feed.xml --limit 3
    """
    from pipeline.draft import draft_from_feed
    from pipeline.errors import PublishError

    try:
        since_date = dt.date.fromisoformat(since) if since else None
    except ValueError:
        raise PublishError(f"--since: {since!r} is not a date like 2026-11-15") from None
    result = draft_from_feed(
        settings(ctx),
        from_feed,
        today=dt.date.today(),
        since=since_date,
        limit=limit,
        timeout=timeout,
    )
    for warning in result.warnings:
        echo(f"warning: {warning}", err=True)
    echo(f"wrote {shown(result.path)} from {plural(len(result.posts), 'post')}")


@app.command()
def deploy(
    ctx: typer.Context,
    delete: Annotated[
        bool, typer.Option("--delete", help="Also remove objects that public/ no longer has.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; change nothing.")
    ] = False,
) -> None:
    """Upload public/ to the S3 bucket in the settings, only the files that changed.

    Example: publish deploy --delete --dry-run
    """
    from pipeline.deploy import deploy_site

    def progress(action: str, path: str) -> None:
        echo(f"{'uploaded' if action == 'upload' else 'deleted'} {path}")

    report = deploy_site(settings(ctx), delete=delete, dry_run=dry_run, progress=progress)
    if report.dry_run:
        for path in report.uploaded:
            echo(f"would upload {path}")
        for path in report.deleted:
            echo(f"would delete {path}")
    verb = "would be " if report.dry_run else ""
    echo(
        f"{report.target}: {len(report.uploaded)} {verb}uploaded, "
        f"{len(report.unchanged)} unchanged, {len(report.deleted)} {verb}deleted"
    )
