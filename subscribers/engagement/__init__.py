"""Opens and clicks through SES, counted per issue and never per reader
(``tracking.enabled``, off by default).

    SES Open / Click event ──(notifications.parse)──> Interaction     interactions.py
        link ──> normalize_link: no query, fragment or token          links.py
    [Interaction] ──count(engine, batch)──> Counted                     counting.py
        one transaction a batch: the ledger finds each message's issue;
        totals and HyperLogLog registers per issue and kind, and per
        issue and link; redeliveries known by a keyed fingerprint
    engagement_for(store, issue) ──> Engagement                         reading.py
    HyperLogLog registers                                               hll.py

Both events paths (``publish events sync`` and ``POST /ses/events``) call
:func:`count` through :func:`subscribers.events.count_engagement`. What is
stored, and what is not, is in :mod:`.counting`'s docstring; the README
says it to the editor.
"""

from __future__ import annotations

from subscribers.engagement.counting import WINDOW, Counted, count
from subscribers.engagement.interactions import (
    KINDS,
    Interaction,
    is_machine_open,
    read_interaction,
)
from subscribers.engagement.links import normalize_link
from subscribers.engagement.reading import ROUGH_OPENS, Engagement, LinkClicks, engagement_for

__all__ = [
    "KINDS",
    "ROUGH_OPENS",
    "WINDOW",
    "Counted",
    "Engagement",
    "Interaction",
    "LinkClicks",
    "count",
    "engagement_for",
    "is_machine_open",
    "normalize_link",
    "read_interaction",
]
