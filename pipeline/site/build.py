"""The entry points: read what the last build left, plan, write.

    public/ ─ read_last_build ─▶ LastBuild ─┐
    Context, sent, now ─────────────────────┴─ plan_site ─▶ Site ─ write_site ─▶ public/, SiteReport

Reading the last build and writing the new one are the only steps that
touch public/; planning in between takes and returns plain data, and the
issues and templates come from the command's context.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.context import Context
from pipeline.render import RenderedIssue
from pipeline.site.cache import read_last_build
from pipeline.site.plan import plan_site
from pipeline.site.selection import aware
from pipeline.site.writer import SiteReport, write_site


def build_site(
    context: Context,
    sent: Mapping[str, datetime],
    now: datetime | None = None,
    *,
    rendered: Iterable[RenderedIssue] = (),
) -> SiteReport:
    """Build public/ for the context's newsletter: plan everything, then write.

    ``sent`` maps each sent issue's slug to when it was sent. To publish an
    issue that is about to be sent, so that its view-in-browser link works
    from the first email, include it with the send's start time.
    ``rendered``: issues the command rendered already (see :func:`plan_site`).
    """
    public_dir = context.settings.public_dir
    moment = aware(now or datetime.now(UTC))
    last = read_last_build(public_dir)
    site = plan_site(context, sent, moment, last, rendered)
    return write_site(public_dir, site)


def build_site_from_ledger(
    context: Context,
    engine: Any,
    now: datetime | None = None,
    *,
    sending: Mapping[str, datetime] | None = None,
    rendered: Iterable[RenderedIssue] = (),
) -> SiteReport:
    """:func:`build_site` with the sent issues read from the send ledger, plus
    ``sending`` (slug to start time) for an issue about to go out."""
    from subscribers.ledger import sent_issue_times

    sent = dict(sent_issue_times(engine))
    sent.update(sending or {})
    return build_site(context, sent, now, rendered=rendered)
