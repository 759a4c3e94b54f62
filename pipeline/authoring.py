"""Starting an issue and previewing it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.files import write_atomic
from pipeline.issue import load_issue, slugify
from pipeline.render import RenderedIssue, render_issue, sample_values

SKELETON = """\
---
title: {title}
date: {date}
subject: {title}
preheader: ""
slug: {slug}
author: {author}
tags: []
publish_at:
---
Start with the reader: what hurts, and what they will be able to do about it
by the end of this email.

## Why it happens

Explain the cause in plain words.

## What to do

1. The first step.
2. The second step.

A picture helps: put it next to this file or in issues/images/ and write
`![what the picture shows](images/picture.jpg "A caption")`.

---

Warmly,
{signature}

P.S. Know someone who would find this useful? Forward this email to them.
"""


def _yaml_text(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def new_issue(settings: Settings, title: str, date: dt.date) -> Path:
    """Write ``issues/YYYY-MM-DD-slug.md`` and return its path; never overwrite."""
    title = " ".join(title.split())
    if not title:
        raise PublishError("the title must not be empty")
    slug = slugify(title)
    path = settings.issues_dir / f"{date.isoformat()}-{slug}.md"
    author = settings.author
    text = SKELETON.format(
        title=_yaml_text(title),
        date=date.isoformat(),
        slug=slug,
        author=_yaml_text(author) if author else '""',
        signature=author.split(",")[0] if author else settings.name,
    )
    try:
        write_atomic(path, text, exclusive=True)
    except FileExistsError:
        raise PublishError(f"{path}: already exists; choose another title or --date") from None
    return path


def local_images(html: str, rendered: RenderedIssue, settings: Settings) -> str:
    """Point the issue's own images at their files, so a preview shows them
    before the site is published."""
    from urllib.parse import quote

    for asset in rendered.assets:
        html = html.replace(settings.url(quote(asset.public_path)), asset.source.as_uri())
    return html


def write_preview(settings: Settings, issue_path: Path, folder: Path) -> tuple[Path, Path]:
    """Render the issue for a sample reader into ``folder``/SLUG.html and .txt."""
    rendered = render_issue(load_issue(issue_path), settings)
    html, text = rendered.fill(sample_values(settings))
    html = local_images(html, rendered, settings)
    html_path = folder / f"{rendered.issue.slug}.html"
    text_path = folder / f"{rendered.issue.slug}.txt"
    write_atomic(html_path, html)
    write_atomic(text_path, text)
    return html_path, text_path
