"""An issue's opens and clicks as plain data, for `publish report` and
`publish status ISSUE`.

    engagement_for(store | engine | connection, "calf-stretch") ──> Engagement
        opens, unique_opens, machine_opens, unique_machine_opens,
        clicks, unique_clicks, links: (LinkClicks(url, clicks, unique), ...)

Unique counts are HyperLogLog estimates (exact or within one or two for a
few hundred messages, about 1.6 % beyond), never above their totals, and
cover the 30 days from the issue's first open or click
(:attr:`Engagement.uniques_until`). :data:`ROUGH_OPENS` is the sentence a
report shows beside the opens.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select

from subscribers.engagement import hll
from subscribers.models import as_utc
from subscribers.schema import engagement_counts, engagement_issues, engagement_links

if TYPE_CHECKING:
    from sqlalchemy import Connection

ROUGH_OPENS = (
    "Opens are a rough figure: they are counted when a mail client loads a "
    "tracking image, which many readers block (so they are missed) and which "
    "privacy proxies such as Apple Mail's load for every message, read or not "
    "(counted apart as machine opens); clicks are firmer."
)


class LinkClicks(NamedTuple):
    url: str
    """Without its query string and fragment; personal tokens as ``{token}``."""
    clicks: int
    unique: int
    """About how many messages it was clicked in."""


@dataclass(frozen=True)
class Engagement:
    """One issue's opens and clicks; all zero before any (or with tracking off)."""

    issue_slug: str
    opens: int = 0
    """Opens from mail clients, machine opens apart."""
    unique_opens: int = 0
    """About how many messages were opened (by mail clients)."""
    machine_opens: int = 0
    """Opens by privacy proxies, image proxies and scanners."""
    unique_machine_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    """About how many messages had a link clicked."""
    links: tuple[LinkClicks, ...] = ()
    """Most clicked first."""
    uniques_until: dt.datetime | None = None
    """When the unique counts stop (or stopped) counting: 30 days after the
    first event; None before any."""


def engagement_for(source: Any, issue_slug: str) -> Engagement:
    """The opens and clicks of ``issue_slug``; ``source`` is a
    :class:`~subscribers.store.Store`, an Engine or a Connection."""
    with _connection(source) as conn:
        counts = {
            row.kind: (int(row.total), _unique(row.registers, row.total))
            for row in conn.execute(
                select(engagement_counts.c.kind, engagement_counts.c.total,
                       engagement_counts.c.registers)
                .where(engagement_counts.c.issue_slug == issue_slug))
        }
        links = sorted(
            (LinkClicks(row.url, int(row.clicks), _unique(row.registers, row.clicks))
             for row in conn.execute(
                 select(engagement_links.c.url, engagement_links.c.clicks,
                        engagement_links.c.registers)
                 .where(engagement_links.c.issue_slug == issue_slug))),
            key=lambda link: (-link.clicks, link.url),
        )
        until = conn.execute(select(engagement_issues.c.salt_until)
                             .where(engagement_issues.c.issue_slug == issue_slug)).scalar()
    opens, machine, clicks = (counts.get(k, (0, 0)) for k in ("open", "machine_open", "click"))
    return Engagement(
        issue_slug=issue_slug,
        opens=opens[0],
        unique_opens=opens[1],
        machine_opens=machine[0],
        unique_machine_opens=machine[1],
        clicks=clicks[0],
        unique_clicks=clicks[1],
        links=tuple(links),
        uniques_until=as_utc(until),
    )


def _unique(registers: bytes, total: int) -> int:
    return min(hll.estimate(hll.load(registers)), int(total))


@contextmanager
def _connection(source: Any) -> Iterator[Connection]:
    from sqlalchemy import Connection, Engine

    if isinstance(source, Connection):
        yield source
        return
    engine = source if isinstance(source, Engine) else source.engine
    with engine.connect() as conn:
        yield conn
