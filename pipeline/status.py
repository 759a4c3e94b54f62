"""Where sends stand, for ``publish status``: plain data, ready for JSON.

    send_statuses(settings)          every send, newest first
    send_statuses(settings, issue)   the send of one issue, by slug or file
      └─ [SendStatus]                totals, failures with reasons, rate, what is left

It only reads the ledger (:meth:`subscribers.ledger.Ledger.status`); the CLI
prints what it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import SendError

if TYPE_CHECKING:
    from subscribers.ledger import SendStatus


def send_statuses(settings: Settings, issue: str | None = None) -> list[SendStatus]:
    """Where each send stands (newest first), or the send of ``issue`` (a
    slug, or an issue file whose slug is used). Plain data, ready for JSON."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    slug = None if issue is None else issue_slug(settings, issue)
    engine = connect(settings.database_url, settings.root)
    try:
        ledger = Ledger(engine)
        if slug is None:
            return [ledger.status(send.id) for send in ledger.sends()]
        send = ledger.find(slug)
        if send is None:
            raise SendError(f"{issue}: never sent (no send for the slug {slug!r})")
        return [ledger.status(send.id)]
    finally:
        engine.dispose()


def issue_slug(settings: Settings, name: str) -> str:
    """The slug ``name`` stands for: an issue file's slug, or ``name`` itself."""
    from pipeline.errors import IssueError
    from pipeline.issue import find_issue, load_issue

    try:
        return load_issue(find_issue(name, settings.issues_dir)).slug
    except IssueError:
        return name
