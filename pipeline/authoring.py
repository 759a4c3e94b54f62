"""Starting an issue and previewing it.

    new_issue(settings, title, date)       issues/YYYY-MM-DD-slug.md, a skeleton
    write_preview(context, path, folder)   SLUG.html and SLUG.txt for a sample reader

A preview is rendered from the command's context (:mod:`pipeline.context`),
like every rendering.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pipeline.config import Settings
from pipeline.context import Context
from pipeline.errors import PublishError
from pipeline.issue import slugify
from pipeline.render import RenderedIssue, render_issue, sample_values
from subscribers.files import write_atomic

SKELETON = """\
Start with the reader: what hurts, and what they will be able to do about it
by the end of this email.

## Why it happens

Explain the cause in plain words.

## What to do

1. The first step.
2. The second step.

A picture helps: put it next to this file or in issues/images/ and write
`![what the picture shows](images/picture.jpg "A caption")`."""
"""The body of a new issue from ``publish new``, for the editor to replace."""

CLOSING = (
    "Warmly,\n{signature}\n\n"
    "P.S. Know someone who would find this useful? Forward this email to them."
)
"""The sign-off and P.S. every new issue ends with, after a rule."""


def _yaml_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def signature(settings: Settings) -> str:
    """The name a new issue is signed with: the author's, without what follows
    a comma ("Dana Whitfield" of "Dana Whitfield, PT"), or the newsletter's."""
    author = settings.author
    return author.split(",")[0] if author else settings.name


@dataclass(frozen=True)
class NewIssue:
    """A new issue file, as ``publish new`` and ``publish draft`` write it:
    the front matter, ``body``, a rule, and the sign-off and P.S."""

    title: str
    date: dt.date
    author: str
    body: str
    signature: str
    preheader: str = ""
    tags: tuple[str, ...] = ()

    @cached_property
    def slug(self) -> str:
        return slugify(self.title)

    @property
    def file_name(self) -> str:
        """``YYYY-MM-DD-slug.md``"""
        return f"{self.date.isoformat()}-{self.slug}.md"

    def text(self) -> str:
        front = [
            "---",
            f"title: {_yaml_text(self.title)}",
            f"date: {self.date.isoformat()}",
            f"subject: {_yaml_text(self.title)}",
            f"preheader: {_yaml_text(self.preheader)}",
            f"slug: {self.slug}",
            f"author: {_yaml_text(self.author)}",
            f"tags: {json.dumps(list(self.tags), ensure_ascii=False)}",
            "publish_at:",
            "---",
        ]
        closing = CLOSING.format(signature=self.signature)
        return "\n".join(front) + f"\n{self.body}\n\n---\n\n{closing}\n"


def write_new_issue(settings: Settings, issue: NewIssue, *, if_exists: str) -> Path:
    """Write ``issue`` into issues/ and return its path. Never overwrites: a
    file of that name is a :class:`PublishError` ending with ``if_exists``."""
    path = settings.issues_dir / issue.file_name
    try:
        write_atomic(path, issue.text(), exclusive=True)
    except FileExistsError:
        raise PublishError(f"{path}: already exists; {if_exists}") from None
    return path


def new_issue(settings: Settings, title: str, date: dt.date) -> Path:
    """Write ``issues/YYYY-MM-DD-slug.md`` and return its path; never overwrite."""
    title = " ".join(title.split())
    if not title:
        raise PublishError("the title must not be empty")
    issue = NewIssue(
        title=title,
        date=date,
        author=settings.author,
        body=SKELETON,
        signature=signature(settings),
    )
    return write_new_issue(settings, issue, if_exists="choose another title or --date")


def local_images(html: str, rendered: RenderedIssue, settings: Settings) -> str:
    """Point the issue's own images at their files, so a preview shows them
    before the site is published."""
    from urllib.parse import quote

    for asset in rendered.assets:
        html = html.replace(settings.url(quote(asset.public_path)), asset.source.as_uri())
    return html


def write_preview(context: Context, issue_path: Path, folder: Path) -> tuple[Path, Path]:
    """Render the issue at ``issue_path`` (read into ``context``) for a sample
    reader into ``folder``/SLUG.html and .txt."""
    settings = context.settings
    rendered = render_issue(context.issues.load(issue_path), context)
    html, text = rendered.fill(sample_values(settings))
    html = local_images(html, rendered, settings)
    html_path = folder / f"{rendered.issue.slug}.html"
    text_path = folder / f"{rendered.issue.slug}.txt"
    write_atomic(html_path, html)
    write_atomic(text_path, text)
    return html_path, text_path
