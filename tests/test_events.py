"""The bounce and complaint policy, on SQLite and on a real PostgreSQL:
what each kind of SES feedback does to a subscriber, their history and the
send it is about, and that nothing is applied twice or to anyone else."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import func, select

from subscribers.csvio import import_csv
from subscribers.errors import Suppressed
from subscribers.events import Policy, apply_feedback, apply_notification, external_id
from subscribers.ledger import Ledger, Outcome
from subscribers.models import EventKind, Stats, Status
from subscribers.notifications import Feedback, parse
from subscribers.schema import subscriber_events, subscribers, suppressions
from subscribers.store import Store
from tests.support.ses_samples import notification

POLICY = Policy(transient_limit=3)
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def store(database_url, tmp_path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def feedback(name: str, recipients: list[str], **options) -> tuple[Feedback, ...]:
    return parse(json.dumps(notification(name, recipients, **options))).feedback


def apply(store, name: str, recipients: list[str], policy=POLICY, **options):
    return apply_feedback(store, feedback(name, recipients, **options), policy)


def snapshot(store) -> dict:
    """Every row of the subscriber tables, to show what did not change."""
    with store.engine.connect() as conn:
        return {
            table.name: sorted(tuple(map(str, row)) for row in conn.execute(select(table)))
            for table in (subscribers, subscriber_events, suppressions)
        }


def kinds(store, email: str) -> list[str]:
    return [event.kind for event in store.history(store.find(email).id)]


def last(store, email: str, kind: str):
    """The subscriber's latest ``kind`` event. (SES's timestamps, to the
    millisecond, may sort an event before one recorded here just earlier.)"""
    return [e for e in store.history(store.find(email).id) if e.kind == kind][-1]


def sent_message(store, emails: list[str], slug: str = "calf-stretch") -> tuple[int, dict]:
    """A send of ``slug`` in the ledger with a message to each of ``emails``;
    its id and the provider message id of each recipient."""
    ledger = Ledger(store.engine)
    send, _ = ledger.start(slug, f"issues/{slug}.md", "Subject", "ses")
    claimed, _ = ledger.claim(send.id, 1000)
    ids = {c.email: f"0100-{slug}-{c.subscriber_id}-000000" for c in claimed if c.email in emails}
    ledger.record([Outcome(c.row_id, "sent", message_id=ids[c.email]) for c in claimed
                   if c.email in ids])
    return send.id, ids


# ---------------------------------------------------------------------------
# Each kind of feedback
# ---------------------------------------------------------------------------


def test_a_permanent_bounce_marks_the_subscriber_bounced_linked_to_the_send(store):
    store.add("ana@example.com")
    store.add("ben@example.com")
    send_id, ids = sent_message(store, ["ana@example.com"])

    applied = apply(store, "bounce-permanent", ["ana@example.com"],
                    message_id=ids["ana@example.com"], feedback_id="fb-1")

    assert (applied.bounced, applied.suppressed) == (1, 1)
    assert store.find("ana@example.com").status == Status.BOUNCED
    assert store.find("ben@example.com").status == Status.ACTIVE
    event = last(store, "ana@example.com", EventKind.BOUNCED)
    assert event.send_id == send_id
    assert event.external_id == "fb-1:ana@example.com"
    assert event.detail["issue"] == "calf-stretch"
    assert event.detail["message_id"] == ids["ana@example.com"]
    assert event.detail["bounce_type"] == "Permanent"
    assert event.detail["from"] == "active"
    assert event.detail["diagnosticCode"] == "smtp; 550 5.1.1 user unknown"
    assert Ledger(store.engine).status(send_id).events == {"bounced": 1}


def test_a_permanent_bounce_leaves_someone_who_left_as_they_were(store):
    reader = store.add("ana@example.com")
    store.unsubscribe(reader.id)
    apply(store, "bounce-permanent", ["ana@example.com"])
    assert store.find("ana@example.com").status == Status.UNSUBSCRIBED
    assert last(store, "ana@example.com", "bounced").detail["bounce_type"] == "Permanent"


def test_a_pending_subscriber_whose_confirmation_bounces_is_bounced(store):
    store.add("ana@example.com", status=Status.PENDING)
    apply(store, "bounce-permanent", ["ana@example.com"])
    assert store.find("ana@example.com").status == Status.BOUNCED


def test_transient_bounces_mark_bounced_at_the_limit_within_30_days(store):
    store.add("ana@example.com")
    store.add("ben@example.com")
    # One long ago does not count.
    apply(store, "bounce-transient", ["ana@example.com"], at=NOW - dt.timedelta(days=31))
    for day in (20, 10):
        applied = apply(store, "bounce-transient", ["ana@example.com"],
                        at=NOW - dt.timedelta(days=day))
        assert (applied.soft_bounced, applied.suppressed) == (1, 0)
    assert store.find("ana@example.com").status == Status.ACTIVE

    applied = apply(store, "bounce-transient", ["ana@example.com"])
    assert (applied.soft_bounced, applied.suppressed) == (1, 1)
    ana = store.find("ana@example.com")
    assert ana.status == Status.BOUNCED
    decision = last(store, "ana@example.com", EventKind.BOUNCED)
    assert decision.detail["reason"] == "3 transient bounces in 30 days"
    assert decision.external_id is None  # decided here, not a bounce SES reported
    assert kinds(store, "ana@example.com").count("soft_bounced") == 4
    assert store.find("ben@example.com").status == Status.ACTIVE


def test_the_transient_limit_is_a_setting(store):
    store.add("ana@example.com")
    apply(store, "bounce-transient", ["ana@example.com"], policy=Policy(transient_limit=1))
    assert store.find("ana@example.com").status == Status.BOUNCED


def test_transient_bounces_in_one_notification_batch_count_together(store):
    store.add("ana@example.com")
    items = [
        item
        for n in range(3)
        for item in feedback("bounce-transient", ["ana@example.com"], feedback_id=f"t{n}")
    ]
    applied = apply_feedback(store, items, POLICY)
    assert (applied.soft_bounced, applied.suppressed) == (3, 1)
    assert store.find("ana@example.com").status == Status.BOUNCED


def test_an_undetermined_bounce_is_recorded_only(store):
    store.add("ana@example.com")
    applied = apply(store, "bounce-undetermined", ["ana@example.com"])
    assert (applied.undetermined, applied.suppressed) == (1, 0)
    assert store.find("ana@example.com").status == Status.ACTIVE
    assert last(store, "ana@example.com", "bounce_undetermined").detail["bounce_type"] == (
        "Undetermined"
    )


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.UNSUBSCRIBED, Status.BOUNCED])
def test_a_complaint_marks_complained_whatever_the_status(store, status):
    store.add("ana@example.com", status=status)
    applied = apply(store, "complaint", ["ana@example.com"])
    assert (applied.complained, applied.suppressed) == (1, 1)
    ana = store.find("ana@example.com")
    assert ana.status == Status.COMPLAINED
    assert last(store, "ana@example.com", "complained").detail["from"] == str(status)
    assert store.suppression("ana@example.com") == "complained"


def test_a_complained_address_is_never_mailed_again_even_by_reimport(store, tmp_path):
    store.add("ana@example.com")
    apply(store, "complaint", ["ana@example.com"])

    csv = tmp_path / "list.csv"
    csv.write_text("email,status\nANA@example.com,active\n", encoding="utf-8")
    import_csv(store, csv, reactivate=True)
    assert store.find("ana@example.com").status == Status.COMPLAINED

    store.erase("ana@example.com")
    with pytest.raises(Suppressed):
        store.add("ana@example.com")
    report = import_csv(store, csv, reactivate=True)
    assert report.added == 0 and len(report.suppressed) == 1
    assert store.get_by_email("ana@example.com") is None


def test_a_delivery_is_recorded_and_counted_for_its_send(store):
    for name in ("ana", "ben", "cleo"):
        store.add(f"{name}@example.com")
    send_id, ids = sent_message(store, ["ana@example.com", "ben@example.com", "cleo@example.com"])
    for email, message_id in ids.items():
        apply(store, "delivery", [email], message_id=message_id)
    apply(store, "complaint", ["cleo@example.com"], message_id=ids["cleo@example.com"])

    status = Ledger(store.engine).status(send_id)
    assert status.events == {"delivered": 3, "complained": 1}
    assert store.find("ana@example.com").status == Status.ACTIVE
    assert store.stats().delivered == 3


def test_feedback_about_a_message_not_in_the_ledger_is_kept_unlinked(store):
    store.add("ana@example.com")
    apply(store, "bounce-permanent", ["ana@example.com"], message_id="0100-not-ours")
    event = last(store, "ana@example.com", "bounced")
    assert event.send_id is None and "issue" not in event.detail


# ---------------------------------------------------------------------------
# Several recipients, duplicates, strangers
# ---------------------------------------------------------------------------


def test_every_recipient_of_a_notification_is_applied(store):
    for name in ("ana", "ben", "cleo"):
        store.add(f"{name}@example.com")
    body = json.dumps(notification("bounce-permanent", ["ana@example.com", "Ben Ode <BEN@example.com>",
                                                        "stranger@example.com", "cleo@example.com"]))
    applied = apply_notification(store, body, POLICY)
    assert (applied.bounced, applied.unknown_recipients) == (3, 1)
    assert {s.status for s in store.list()} == {Status.BOUNCED}
    assert store.get_by_email("stranger@example.com") is None


def test_a_notification_applied_twice_changes_nothing_the_second_time(store):
    for name in ("ana", "ben"):
        store.add(f"{name}@example.com")
    items = feedback("bounce-transient", ["ana@example.com", "ben@example.com"])
    first = apply_feedback(store, items, POLICY)
    before = snapshot(store)
    again = apply_feedback(store, items + items, POLICY)
    assert first.soft_bounced == 2
    assert (again.soft_bounced, again.duplicates) == (0, 4)
    assert snapshot(store) == before


def test_the_same_feedback_twice_in_one_batch_counts_once(store):
    store.add("ana@example.com")
    items = feedback("bounce-transient", ["ana@example.com"], feedback_id="same")
    applied = apply_feedback(store, items * 3, POLICY)
    assert (applied.soft_bounced, applied.duplicates) == (1, 2)
    assert kinds(store, "ana@example.com").count("soft_bounced") == 1


def test_feedback_about_strangers_changes_nothing(store):
    store.add("ana@example.com")
    before = snapshot(store)
    for name in ("bounce-permanent", "complaint", "delivery", "bounce-transient"):
        applied = apply(store, name, ["stranger@example.com"])
        assert applied.unknown_recipients == 1
    assert snapshot(store) == before


def test_concurrent_redeliveries_apply_once(store):
    """Two workers applying the same notification at the same moment (SQS
    delivers at least once): one records it, the other finds it recorded."""
    emails = [f"r{n}@example.com" for n in range(20)]
    for email in emails:
        store.add(email)
    items = feedback("bounce-transient", emails, feedback_id="race")
    results, errors = [], []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        try:
            results.append(apply_feedback(store, items, POLICY))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.soft_bounced for r in results) == 20
    assert sum(r.duplicates for r in results) == 60
    with store.engine.connect() as conn:
        assert conn.execute(
            select(func.count()).select_from(subscriber_events)
            .where(subscriber_events.c.kind == "soft_bounced")
        ).scalar_one() == 20


def test_hostile_ids_and_timestamps_are_stored_safely(store):
    store.add("ana@example.com")
    items = feedback("bounce-undetermined", ["ana@example.com"], feedback_id="f" * 900,
                     message_id="m" * 900, at=NOW + dt.timedelta(days=3650))
    apply_feedback(store, items, POLICY)
    event = last(store, "ana@example.com", "bounce_undetermined")
    assert event.external_id == external_id(items[0]) and len(event.external_id) <= 300
    assert event.at <= dt.datetime.now(dt.UTC)  # never in the future
    assert apply_feedback(store, items, POLICY).duplicates == 1


def test_nul_characters_never_reach_the_database(store):
    """PostgreSQL's text cannot hold NUL: a diagnostic carrying one is stored
    with a replacement character instead of failing the transaction."""
    store.add("ana@example.com")
    body = notification("bounce-permanent", ["ana@example.com"], message_id="m\x00id")
    body["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "550\x00 unknown"
    apply_notification(store, json.dumps(body), POLICY)
    event = last(store, "ana@example.com", "bounced")
    assert event.detail["diagnosticCode"] == "550\ufffd unknown"
    assert store.find("ana@example.com").status == Status.BOUNCED


# ---------------------------------------------------------------------------
# A send in progress, and the list's health
# ---------------------------------------------------------------------------


def test_a_complaint_during_a_send_skips_the_rest_of_it(store):
    emails = [f"r{n}@example.com" for n in range(6)]
    for email in emails:
        store.add(email)
    previous_id, previous = sent_message(store, [emails[4]], slug="earlier-issue")
    ledger = Ledger(store.engine)
    send, _ = ledger.start("calf-stretch", "issues/calf-stretch.md", "Subject", "ses")
    claimed, _ = ledger.claim(send.id, 2)
    ledger.record([Outcome(c.row_id, "sent", message_id=f"m{c.row_id}") for c in claimed])

    # The reader of an earlier issue complains while this one is going out.
    apply(store, "complaint", [emails[4]], message_id=previous[emails[4]])

    rest, skipped = ledger.claim(send.id, 10)
    assert [c.email for c in rest] == [emails[2], emails[3], emails[5]]
    assert len(skipped) == 1 and skipped[0].error == "complained since the send began"
    assert ledger.status(send.id).totals.skipped == 1
    assert ledger.status(previous_id).events == {"complained": 1}


def test_stats_rates_come_from_what_ses_reported_in_the_last_30_days(store):
    emails = [f"r{n}@example.com" for n in range(10)]
    for email in emails:
        store.add(email)
    _, ids = sent_message(store, emails)
    apply(store, "bounce-permanent", [emails[0]], message_id=ids[emails[0]])
    apply(store, "complaint", [emails[1]], message_id=ids[emails[1]])
    apply(store, "bounce-permanent", [emails[2]], at=NOW - dt.timedelta(days=40))
    for _ in range(3):  # reaches the transient limit: a status change, no reported bounce
        apply(store, "bounce-transient", [emails[3]])
    stats = store.stats()
    assert (stats.sent, stats.bounced, stats.complained) == (10, 1, 1)
    assert (stats.bounce_rate, stats.complaint_rate) == (0.1, 0.1)


def test_health_levels_against_the_providers_thresholds():
    from subscribers.health import health

    def levels(bounced: int, complained: int) -> list[str]:
        figures = Stats(by_status={}, sent=100_000, bounced=bounced, complained=complained)
        return [f"{level}: {message.split(' is ')[0]}" for level, message in health(figures)]

    assert levels(1_000, 50) == []  # 1% bounces, 0.05% complaints
    assert levels(2_000, 80) == ["warning: bounce rate 2.00%", "warning: complaint rate 0.08%"]
    assert levels(5_000, 100) == ["error: bounce rate 5.00%", "warning: complaint rate 0.10%"]
    assert levels(0, 300) == ["error: complaint rate 0.30%"]
