"""`publish embed`: print the blog's subscribe box (:mod:`pipeline.embed`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.app import app, echo, settings
from subscribers.provenance import BLOG_SIDEBAR, MAX_SOURCE


@app.command()
def embed(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help=f"Where the box goes, kept with each signup's consent (at most {MAX_SOURCE} "
            "characters).",
        ),
    ] = BLOG_SIDEBAR,
) -> None:
    """Print a subscribe box for the blog: an HTML form that posts to the site's /subscribe.

    Paste it into any page of the blog (newsletter.blog_url): it is one form
    with its styles inline, no script and nothing to fetch, and the service
    takes its posts from the blog's address only. Each signup is recorded
    with its source ("blog sidebar" unless --source says otherwise) and
    sent on to the site's "check your inbox" page.

    Example: publish embed --source "blog sidebar" > subscribe-box.html
    """
    from pipeline.embed import embed_snippet

    echo(embed_snippet(settings(ctx), source))
