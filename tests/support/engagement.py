"""SES Open and Click events made from the saved samples (tests/data/ses
event-open.json and event-click.json, configuration-set event publishing's
shape), and a send in the ledger for them to be about.

Every event made here has its own timestamp (a millisecond apart), as two
opens by a reader do; the same dict sent twice is a redelivery."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from subscribers.ledger import Ledger, Outcome
from subscribers.store import Store
from tests.support.ses_samples import sample, stamp

READER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Mobile/15E148")
"""A mail client's User-Agent: a reader's open."""
APPLE_PROXY = "Mozilla/5.0"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"

_ticks = itertools.count()
_START = dt.datetime.now(dt.UTC)


def _moment(at: dt.datetime | None) -> str:
    """``at`` (by default when this module was imported) less a millisecond
    more than the last event's: no two events the same."""
    return stamp((at or _START) - dt.timedelta(milliseconds=next(_ticks) % 3_600_000))


def open_event(
    message_id: str,
    *,
    agent: str | None = READER,
    ip: str = "192.0.2.1",
    at: dt.datetime | None = None,
    issue: str | None = "calf-stretch",
) -> dict:
    """SES's Open event for ``message_id`` (``agent`` None: no User-Agent)."""
    body = sample("event-open")
    body["mail"]["messageId"] = message_id
    _tag(body, issue)
    body["open"] = {"timestamp": _moment(at), "ipAddress": ip}
    if agent is not None:
        body["open"]["userAgent"] = agent
    return body


def click_event(
    message_id: str,
    link: object,
    *,
    at: dt.datetime | None = None,
    issue: str | None = "calf-stretch",
) -> dict:
    """SES's Click event for ``message_id`` on ``link``."""
    body = sample("event-click")
    body["mail"]["messageId"] = message_id
    _tag(body, issue)
    body["click"].update(timestamp=_moment(at), link=link)
    return body


def _tag(body: dict, issue: str | None) -> None:
    if issue is None:
        body["mail"].pop("tags", None)
    else:
        body["mail"]["tags"] = {"issue": [issue]}


def sent_to(store: Store, emails: Sequence[str], slug: str = "calf-stretch") -> list[str]:
    """A send of ``slug`` to ``emails`` (added to the list if need be), each
    with an SES message id in the ledger, as after a real send: the ids."""
    for email in emails:
        if store.get_by_email(email) is None:
            store.add(email)
    ledger = Ledger(store.engine)
    send, _ = ledger.start(slug, f"issues/{slug}.md", "Subject", "ses")
    claimed, _ = ledger.claim(send.id, len(emails) + 1000)
    ids = {c.email: f"0100018c{slug}-{c.subscriber_id:06d}-000000" for c in claimed}
    ledger.record([Outcome(c.row_id, "sent", message_id=ids[c.email]) for c in claimed])
    return [ids[email] for email in emails if email in ids]
