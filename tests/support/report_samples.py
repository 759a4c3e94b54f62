"""A newsletter with four weeks of history, for `publish report` and
`publish status ISSUE`.

Everything happens through the real parts: readers added with `publish
subscribers add`, two issues sent through the outbox with `publish issue`,
SES feedback applied by the events path (:func:`subscribers.events.apply_feedback`),
unsubscribes and a reason through the store and :mod:`subscribers.leaving`,
form signups through :mod:`subscribers.signup` and a confirmation through
:mod:`subscribers.confirm`, opens and clicks through the engagement counts.
Then the moments of the first weeks are moved back (UPDATE of their
timestamps), so that the weeks are fixed relative to the current one:

    week -3 (Wednesday)  20 readers added (no source recorded)
    week -2              nothing at all
    week -1  Monday      calf-stretch sent to the 20
             Tuesday     19 deliveries; r18 bounces, r19 complains
             Thursday    r01 unsubscribes ("too often"), r02 without a reason
    week 0   (now)       desk-wrist-routine sent to the 16 still active, all
                         delivered; r03 unsubscribes; a signup from the blog
                         sidebar confirms, one from an issue page waits;
                         opens and clicks of desk-wrist-routine (tracking)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from typer.testing import CliRunner

from pipeline.cli import app
from subscribers.confirm import confirm_signup
from subscribers.engagement import Interaction, count
from subscribers.events import Policy, apply_feedback
from subscribers.leaving import Reason, record_reason
from subscribers.models import EventKind, LeavingReason
from subscribers.notifications import Feedback, Kind
from subscribers.schema import send_recipients, sends, subscriber_events, subscribers
from subscribers.service import Origin
from subscribers.signup import subscribe
from subscribers.store import Store
from subscribers.tokens import ConfirmLink

READERS = [f"r{i:02d}@example.com" for i in range(20)]
FIRST, SECOND = "calf-stretch", "desk-wrist-routine"
ISSUES = {
    FIRST: "issues/2026-12-01-calf-stretch.md",
    SECOND: "issues/2026-12-15-desk-wrist-routine.md",
}
LINKS = {
    "https://painfreeliving.example.com/issues/desk-wrist-routine/": 5,
    "https://forum.painfreeliving.example.com/t/wrists": 3,
    "https://painfreeliving.example.com/blog/posture": 2,
    "https://example.org/elsewhere": 1,
}
"""Clicks of each link of desk-wrist-routine, each from a different message."""
OPENS = 10
MACHINE_OPENS = 4

runner = CliRunner()


def week_start(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(dt.UTC).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class History:
    now: dt.datetime
    """When it was built: week 0 is this moment's week."""

    def at(self, weeks_back: int, day: int, hour: int = 12) -> dt.datetime:
        """Day ``day`` (0 = Monday) of the week ``weeks_back`` before this one."""
        return week_start(self.now) - dt.timedelta(weeks=weeks_back, days=-day, hours=-hour)

    def monday(self, weeks_back: int) -> str:
        return (week_start(self.now) - dt.timedelta(weeks=weeks_back)).date().isoformat()


def publish(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def message_ids(store: Store, slug: str) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(send_recipients.c.email, send_recipients.c.message_id)
            .join(sends, sends.c.id == send_recipients.c.send_id)
            .where(sends.c.issue_slug == slug)
        ).all()
    return {email: message_id for email, message_id in rows}


def feedback(kind: Kind, email: str, message_id: str, at: dt.datetime, **more) -> Feedback:
    return Feedback(kind, email, message_id, f"{kind}-{message_id}-{email}", at, **more)


def move(store: Store, table, where, **values) -> None:
    with store.engine.begin() as conn:
        assert conn.execute(update(table).where(where).values(**values)).rowcount


def build_history(settings) -> History:
    """The history above, in ``settings``' database (and its outbox)."""
    history = History(dt.datetime.now(dt.UTC))
    with Store.open(settings.database_url, settings.root) as store:
        for email in READERS:
            publish("subscribers", "add", email)
        added = history.at(3, 2)
        ids = {email: store.find(email).id for email in READERS}
        move(store, subscribers, subscribers.c.id.in_(ids.values()), created_at=added)
        move(store, subscriber_events, subscriber_events.c.kind == "subscribed", at=added)

        publish("issue", ISSUES[FIRST], "--yes")
        send_id = store.engine.connect().execute(
            select(sends.c.id).where(sends.c.issue_slug == FIRST)
        ).scalar_one()
        move(store, sends, sends.c.id == send_id, created_at=history.at(1, 0, 9))
        move(store, send_recipients, send_recipients.c.send_id == send_id,
              sent_at=history.at(1, 0, 9))
        first = message_ids(store, FIRST)
        tuesday = history.at(1, 1)
        found = [
            feedback("delivery", email, first[email], tuesday)
            for email in READERS if email != "r18@example.com"
        ]
        found.append(feedback("bounce", "r18@example.com", first["r18@example.com"], tuesday,
                                  bounce_type="Permanent"))
        found.append(feedback("complaint", "r19@example.com", first["r19@example.com"],
                                  tuesday))
        apply_feedback(store, found, Policy())

        for email in ("r01@example.com", "r02@example.com"):
            store.unsubscribe(ids[email], {"via": "unsubscribe link"})
            move(store, subscriber_events,
                  (subscriber_events.c.subscriber_id == ids[email])
                  & (subscriber_events.c.kind == str(EventKind.UNSUBSCRIBED)),
                  at=history.at(1, 3))
        record_reason(store, ids["r01@example.com"], Reason(LeavingReason.TOO_OFTEN, ""))

        publish("issue", ISSUES[SECOND], "--yes")
        second = message_ids(store, SECOND)
        now = dt.datetime.now(dt.UTC)
        apply_feedback(
            store, [feedback("delivery", e, m, now) for e, m in second.items()], Policy()
        )
        store.unsubscribe(ids["r03@example.com"], {"via": "unsubscribe link"})

        origin = Origin("192.0.2.1", "TestBrowser/1.0")
        joined = subscribe(store, "new@example.com", "New", consent_text="Yes", origin=origin,
                           source="blog sidebar")
        subscribe(store, "wait@example.com", "", consent_text="Yes", origin=origin,
                  source="issue page")
        assert joined is not None
        [signup] = store.signups(joined)
        with store.transaction() as tx:
            confirm_signup(tx, ConfirmLink(joined, signup.nonce), origin)

        messages = sorted(second.values())
        interactions = [
            Interaction("open", message_id, now, f"open-{message_id}")
            for message_id in messages[:OPENS]
        ] + [
            Interaction("machine_open", message_id, now, f"machine-{message_id}")
            for message_id in messages[:MACHINE_OPENS]
        ]
        for link, clicks in LINKS.items():
            interactions += [
                Interaction("click", message_id, now, f"click-{link}-{message_id}", link=link)
                for message_id in messages[:clicks]
            ]
        count(store.engine, interactions)
    return history
