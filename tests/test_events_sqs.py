"""`publish events sync` against real SQS and SNS: moto's server over HTTP.

An SNS topic is subscribed by an SQS queue (as SES → SNS → SQS is set up in
AWS); the saved samples go through the topic (wrapped in SNS's envelope) and
straight into the queue (raw message delivery). The queue has a dead-letter
queue after two receives, and a short visibility timeout so that messages a
run leaves behind come back quickly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pipeline.cli import app
from subscribers.db import connect
from subscribers.events import Policy
from subscribers.models import Status
from subscribers.schema import send_recipients, subscriber_events
from subscribers.sqs import sync_queue
from subscribers.store import Store
from tests.support.aws import aws_env, topic_to_queue
from tests.support.faulty_proxy import FaultyProxy
from tests.support.ses_samples import SHAPES, TYPES, notification, sample

runner = CliRunner()
ISSUE = "issues/2026-12-01-calf-stretch.md"


@dataclass
class Feed:
    """The queue SES feedback arrives in, and the topic that feeds it."""

    sqs: Any
    sns: Any
    queue_url: str
    dead_letters_url: str
    topic_arn: str

    def publish(self, body: dict | str) -> None:
        """Through SNS, which wraps it in its envelope."""
        self.sns.publish(TopicArn=self.topic_arn, Message=body if isinstance(body, str)
                         else json.dumps(body))

    def send_raw(self, body: dict | str) -> None:
        """Straight into the queue, as SNS's raw message delivery does."""
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body if isinstance(body, str)
                              else json.dumps(body))

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages on the queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (int(attributes["ApproximateNumberOfMessages"]),
                int(attributes["ApproximateNumberOfMessagesNotVisible"]))

    def wait_visible(self, count: int, seconds: float = 30) -> None:
        wait_until(lambda: self.counts()[0] >= count, seconds)


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def feed(aws) -> Feed:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    queue, dead, topic = topic_to_queue(sqs, sns, "ses-feedback", max_receive_count=2)
    return Feed(sqs, sns, queue, dead, topic)


@pytest.fixture
def store(settings):
    with Store.open(settings.database_url, settings.root) as opened:
        yield opened


def add(store, count: int, prefix: str = "r") -> list[str]:
    emails = [f"{prefix}{n:03d}@example.com" for n in range(count)]
    for email in emails:
        store.add(email)
    return emails


def sync(feed: Feed, *args: str):
    """`publish events sync` on the feed's queue. Its receivers work at once,
    and moto (like SQS, at least once) may hand two of them the same message:
    assert on what was applied, or use :func:`sync_one` to count messages."""
    return runner.invoke(
        app, ["events", "sync", "--queue-url", feed.queue_url, "--wait", "0", *args]
    )


def sync_one(feed: Feed, store, **options):
    """The same sync in this process with one receiver: exact message counts."""
    return sync_queue(store, feed.sqs, feed.queue_url, Policy(), receivers=1, **options)


def number(text: str, label: str) -> int:
    """The count before ``label`` in a summary line."""
    found = re.search(rf"(\d+) {label}", text)
    assert found, (label, text)
    return int(found.group(1))


def event_counts(settings) -> Counter:
    engine = connect(settings.database_url, settings.root)
    try:
        with engine.connect() as conn:
            return Counter(dict(conn.execute(
                select(subscriber_events.c.kind, func.count()).group_by(subscriber_events.c.kind)
            ).all()))
    finally:
        engine.dispose()


EXPECTED = {
    "bounce-permanent": (Status.BOUNCED, "bounced"),
    "bounce-transient": (Status.ACTIVE, "soft_bounced"),
    "bounce-undetermined": (Status.ACTIVE, "bounce_undetermined"),
    "complaint": (Status.COMPLAINED, "complained"),
    "delivery": (Status.ACTIVE, "delivered"),
}


def test_each_type_in_each_shape_through_sns_and_raw(feed, store):
    cases = [(name, shape, route) for name in TYPES for shape in SHAPES for route in ("sns", "raw")]
    emails = add(store, len(cases))
    for email, (name, shape, route) in zip(emails, cases, strict=True):
        body = notification(name, [email], shape=shape)
        feed.publish(body) if route == "sns" else feed.send_raw(body)

    result = sync(feed)

    assert result.exit_code == 0, result.output
    assert number(result.stdout, "messages in") >= 20
    assert ("4 delivered, 4 bounced, 4 soft-bounced, 4 undetermined, 4 complained; "
            "8 taken off the list") in result.stdout
    for email, (name, shape, route) in zip(emails, cases, strict=True):
        subscriber = store.find(email)
        status, kind = EXPECTED[name]
        assert subscriber.status == status, (name, shape, route)
        assert [e.kind for e in store.history(subscriber.id)] == ["subscribed", kind]
    assert feed.counts() == (0, 0)


def test_a_notification_with_several_recipients_and_its_duplicates(feed, store, settings):
    store.add("ana@example.com")
    store.add("ben@example.com")
    store.add("cleo@example.com")
    store.add("dana@example.com")
    body = sample("bounce-permanent-three-recipients")
    feed.publish(body)
    feed.publish(body)  # SNS and SQS deliver at least once
    feed.send_raw(body)

    result = sync(feed)

    assert result.exit_code == 0, result.output
    assert "3 bounced" in result.stdout
    assert number(result.stdout, "already recorded") >= 6
    assert {s.email: s.status for s in store.list()} == {
        "ana@example.com": Status.BOUNCED,
        "ben@example.com": Status.BOUNCED,
        "cleo@example.com": Status.BOUNCED,
        "dana@example.com": Status.ACTIVE,
    }
    assert event_counts(settings)["bounced"] == 3
    assert feed.counts() == (0, 0)

    feed.publish(body)  # days later, once more
    again = sync(feed)
    assert "0 bounced" in again.stdout and number(again.stdout, "already recorded") >= 3
    assert event_counts(settings)["bounced"] == 3


def test_poison_messages_stay_on_the_queue_and_the_rest_is_applied(feed, store):
    emails = add(store, 3)
    feed.send_raw(notification("bounce-permanent", [emails[0]]))
    feed.send_raw("this is not JSON")
    feed.publish(notification("complaint", [emails[1]]))
    feed.publish(json.dumps({"notificationType": "Bounce", "bounce": "no"}))
    feed.send_raw(sample("event-open"))
    feed.send_raw(notification("delivery", [emails[2]], shape="event-"))

    first = sync_one(feed, store)
    assert (first.received, first.deleted, first.ignored, first.kept) == (6, 4, 1, 2)
    assert (first.applied.bounced, first.applied.complained, first.applied.delivered) == (1, 1, 1)
    assert [store.find(e).status for e in emails] == [
        Status.BOUNCED, Status.COMPLAINED, Status.ACTIVE]
    assert feed.counts() == (0, 2)  # received, not deleted

    # They come back after the visibility timeout, and are kept again...
    feed.wait_visible(2)
    second = sync_one(feed, store)
    assert (second.received, second.kept, second.deleted) == (2, 2, 0)
    # ...until the redrive policy moves them to the dead-letter queue.
    feed.wait_visible(2)
    assert sync_one(feed, store).received == 0
    assert feed.counts() == (0, 0)
    assert feed.counts(feed.dead_letters_url)[0] == 2
    kept = feed.sqs.receive_message(QueueUrl=feed.dead_letters_url, MaxNumberOfMessages=10)
    assert "this is not JSON" in {m["Body"] for m in kept["Messages"]}


def test_the_summary_line_says_what_a_run_did():
    from pipeline.cli.events import summary
    from subscribers.events import Applied
    from subscribers.sqs import SyncReport

    report = SyncReport(received=9, deleted=7, ignored=1, kept=2, seconds=0.42, applied=Applied(
        delivered=3, bounced=1, complained=1, duplicates=2, unknown_recipients=1, suppressed=2))
    assert summary(report) == (
        "9 messages in 0.4 s: 3 delivered, 1 bounced, 0 soft-bounced, 0 undetermined, "
        "1 complained; 2 taken off the list; 2 already recorded, 1 not subscribers; "
        "1 other events ignored, 2 unreadable left on the queue"
    )
    assert summary(SyncReport(seconds=1.0)) == "0 messages in 1.0 s: the queue is empty"


def test_a_poison_message_seen_again_in_the_same_run_ends_it(feed, store):
    """With no visibility timeout it comes straight back: the run must end,
    not receive it for ever."""
    feed.sqs.set_queue_attributes(QueueUrl=feed.queue_url, Attributes={"VisibilityTimeout": "0",
                                                                      "RedrivePolicy": ""})
    feed.send_raw("garbage")
    report = sync_queue(store, feed.sqs, feed.queue_url, Policy(), receivers=1)
    assert (report.received, report.kept, report.deleted) == (2, 2, 0)


def test_a_message_the_database_refuses_is_left_and_the_rest_applied(feed, store, settings):
    """A message that parses but that the database will not take (here a
    trigger refuses it) must not stop the queue: the batch is retried one
    message at a time and only that one stays for the dead-letter queue."""
    from sqlalchemy import text

    emails = add(store, 5)
    with store.engine.begin() as conn:
        conn.execute(text(
            "CREATE TRIGGER refuse BEFORE INSERT ON subscriber_events "
            "WHEN NEW.detail LIKE '%poison-pill%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ))
    for n, email in enumerate(emails):
        body = notification("bounce-permanent", [email])
        if n == 2:
            body["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "poison-pill"
        feed.send_raw(body)

    report = sync_one(feed, store)

    assert (report.applied.bounced, report.kept, report.deleted) == (4, 1, 4)
    assert [store.find(e).status for e in emails] == [
        Status.BOUNCED, Status.BOUNCED, Status.ACTIVE, Status.BOUNCED, Status.BOUNCED]
    assert feed.counts() == (0, 1)


def test_nul_characters_in_a_notification_are_stored_safely(feed, store):
    emails = add(store, 2)
    body = notification("bounce-permanent", [emails[0]])
    body["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "smtp; 550\x00 user unknown"
    feed.send_raw(body)
    feed.send_raw(notification("complaint", [emails[1] + "\x00"]))  # someone else's address
    report = sync_one(feed, store)
    assert (report.applied.bounced, report.applied.unknown_recipients) == (1, 1)
    event = next(e for e in store.history(store.find(emails[0]).id) if e.kind == "bounced")
    assert event.detail["diagnosticCode"] == "smtp; 550\ufffd user unknown"
    assert store.find(emails[1]).status == Status.ACTIVE


def test_max_stops_after_n_messages(feed, store, settings):
    emails = add(store, 25)
    for email in emails:
        feed.send_raw(notification("delivery", [email]))
    result = sync(feed, "--max", "12")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("12 messages")
    applied = event_counts(settings)["delivered"]
    assert 10 <= applied <= 12 and sum(feed.counts()) == 25 - applied

    report = sync_one(feed, store, max_messages=5)
    assert (report.received, report.deleted, report.applied.delivered) == (5, 5, 5)


def test_a_stop_finishes_the_batch_in_hand_and_leaves_the_rest(feed, store, settings):
    """Ctrl-C (or SIGTERM) sets the stop: no new receive, nothing half done."""
    emails = add(store, 30)
    for email in emails:
        feed.send_raw(notification("delivery", [email]))
    asked = []

    def stopped() -> bool:
        asked.append(1)
        return len(asked) > 1  # after the first receive

    report = sync_queue(store, feed.sqs, feed.queue_url, Policy(), receivers=1, stopped=stopped)
    assert (report.received, report.deleted) == (10, 10)
    assert event_counts(settings)["delivered"] == 10
    assert sum(feed.counts()) == 20


def test_several_receivers_apply_a_large_batch_exactly_once(feed, store, settings):
    emails = add(store, 120)
    for n in range(0, 120, 10):
        feed.sqs.send_message_batch(QueueUrl=feed.queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(notification("delivery", [email]))}
            for i, email in enumerate(emails[n:n + 10])
        ])
    report = sync_queue(store, feed.sqs, feed.queue_url, Policy(), receivers=4)
    assert report.applied.delivered == 120
    assert report.received == 120 + report.applied.duplicates
    assert report.deleted + report.undeleted == report.received
    assert event_counts(settings)["delivered"] == 120
    assert feed.counts() == (0, 0)


def test_a_missing_queue_or_setting_is_a_one_line_error(feed, newsletter):
    missing = runner.invoke(app, ["events", "sync"])
    assert missing.exit_code == 1
    assert missing.output.strip() == (
        "error: events.queue_url: not set (set it in newsletter.toml, as "
        "NEWSLETTER_EVENTS_QUEUE_URL, or give --queue-url)"
    )
    wrong = feed.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    result = runner.invoke(app, ["events", "sync", "--queue-url", wrong])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {wrong}: ") and "NonExistentQueue" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# A process killed between applying and deleting
# ---------------------------------------------------------------------------


def test_killed_between_commit_and_delete_then_run_again(feed, store, settings, newsletter, aws):
    # Every message here is good: give them enough receives that moto's
    # occasional double delivery never sends one to the dead-letter queue.
    policy = json.loads(feed.sqs.get_queue_attributes(
        QueueUrl=feed.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
    feed.sqs.set_queue_attributes(QueueUrl=feed.queue_url, Attributes={
        "RedrivePolicy": json.dumps({**policy, "maxReceiveCount": "20"})})
    emails = add(store, 30)
    for email in emails[:10]:
        feed.publish(notification("bounce-permanent", [email]))
    for email in emails[10:20]:
        feed.send_raw(notification("complaint", [email], shape="event-"))
    for email in emails[20:]:
        feed.publish(notification("bounce-transient", [email]))

    proxy = FaultyProxy(upstream=aws.url).start()
    held = proxy.hold("AmazonSQS.DeleteMessageBatch")
    env = {k: v for k, v in aws_env(aws).items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_ROOT=str(newsletter), AWS_ENDPOINT_URL=proxy.url)
    child = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()",
         "events", "sync", "--queue-url", feed.queue_url, "--wait", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Delete is called only once a batch's effects are committed.
        assert held.arrived.wait(60), child.communicate(timeout=5)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        proxy.stop()
    assert child.returncode == -signal.SIGKILL

    committed = event_counts(settings)
    applied_before = sum(committed[k] for k in ("bounced", "complained", "soft_bounced"))
    assert applied_before >= 1, "the kill came before anything was applied"
    assert sum(feed.counts()) == 30  # nothing was deleted

    feed.wait_visible(30)
    result = sync(feed)
    assert result.exit_code == 0, result.output
    assert number(result.stdout, "already recorded") >= applied_before
    assert event_counts(settings) - Counter(subscribed=30) == Counter(
        bounced=10, complained=10, soft_bounced=10)
    statuses = Counter(store.find(e).status for e in emails)
    assert statuses == {Status.BOUNCED: 10, Status.COMPLAINED: 10, Status.ACTIVE: 10}
    assert feed.counts() == (0, 0)


# ---------------------------------------------------------------------------
# Feedback about a real send
# ---------------------------------------------------------------------------


def test_feedback_about_a_send_shows_in_status_stats_and_history(ses, feed, store, settings):
    emails = add(store, 6)
    sent = runner.invoke(app, ["issue", ISSUE, "--transport", "ses", "--yes"])
    assert sent.exit_code == 0, sent.output
    engine = connect(settings.database_url, settings.root)
    with engine.connect() as conn:
        rows = conn.execute(select(send_recipients.c.email, send_recipients.c.message_id)).all()
    ids = {email: message_id for email, message_id in rows}
    engine.dispose()
    assert set(ids) == set(emails) and all(ids.values())

    for email in emails:
        feed.publish(notification("delivery", [email], message_id=ids[email], shape="event-"))
    feed.send_raw(notification("bounce-permanent", [emails[0]], message_id=ids[emails[0]]))
    feed.publish(notification("complaint", [emails[1]], message_id=ids[emails[1]]))

    synced = sync(feed)
    assert synced.exit_code == 0, synced.output

    status = runner.invoke(app, ["status", "calf-stretch"])
    assert status.exit_code == 0, status.output
    assert "feedback:  6 delivered (100.0%), 1 bounced (16.7%), 1 complained (16.7%)" in (
        status.stdout)
    as_json = json.loads(runner.invoke(app, ["status", "calf-stretch", "--json"]).stdout)
    assert as_json["events"] == {"delivered": 6, "bounced": 1, "complained": 1}

    show = runner.invoke(app, ["subscribers", "show", emails[0]])
    assert "bounced" in show.stdout and "issue=calf-stretch" in show.stdout

    stats = runner.invoke(app, ["subscribers", "stats"])
    assert stats.exit_code == 0, stats.output
    assert "1 (16.67%)" in stats.stdout
    assert "error: bounce rate 16.67% is over the 5%" in stats.stderr
    assert "error: complaint rate 16.67% is over 0.3%" in stats.stderr


def test_a_complaint_synced_during_a_send_skips_that_reader(feed, store, settings):
    from pipeline.publish import SendOptions, prepare_send

    emails = add(store, 40)
    leaving = emails[-1]
    feed.publish(notification("complaint", [leaving]))  # about an earlier issue
    synced: list = []

    def progress(p) -> None:
        if p.sent >= 5 and not synced:
            synced.append(sync_queue(store, feed.sqs, feed.queue_url, Policy()))

    path = settings.issues_dir / ISSUE.split("/")[1]
    with prepare_send(settings, path, SendOptions(rate=40)) as prepared:
        result = prepared.run(on_progress=progress)

    assert synced and synced[0].applied.complained == 1
    assert result.outcome == "done" and result.skipped == 1 and result.sent == 39
    engine = connect(settings.database_url, settings.root)
    with engine.connect() as conn:
        row = conn.execute(select(send_recipients).where(send_recipients.c.email == leaving)).one()
    engine.dispose()
    assert row.status == "skipped" and row.error == "complained since the send began"


def test_the_benchmark_queue_stand_in_behaves_like_sqs(store, settings, monkeypatch):
    """bench/bench_events.py measures against tests/support/sqs_standin.py
    (moto is too slow with thousands queued): the same run through boto3
    must give the same result there as against moto above."""
    import boto3

    from tests.support.sqs_standin import SqsStandIn

    standin = SqsStandIn(visibility_timeout=1).start()
    try:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(key, "testing")
        sqs = boto3.client("sqs", endpoint_url=standin.url, region_name="us-east-1")
        emails = add(store, 30)
        for email in emails[:25]:
            sqs.send_message(QueueUrl=standin.queue_url,
                             MessageBody=json.dumps(notification("delivery", [email])))
        standin.put([json.dumps(notification("complaint", [e], shape="event-")) for e in emails[25:]])
        standin.put(["garbage"])
        report = sync_queue(store, sqs, standin.queue_url, Policy(), receivers=3)
        assert (report.received, report.deleted, report.kept) == (31, 30, 1)
        assert (report.applied.delivered, report.applied.complained) == (25, 5)
        assert standin.counts() == (0, 1)
        wait_until(lambda: standin.counts() == (1, 0))  # back after the visibility timeout
        assert event_counts(settings)["delivered"] == 25
    finally:
        standin.stop()


# ---------------------------------------------------------------------------
# Batches that outlive the visibility timeout
# ---------------------------------------------------------------------------

VISIBILITY = 2
"""The queue's visibility timeout in these tests, in seconds."""
SLOW = 5
"""How long the slow part of a batch takes: well past the timeout, and not a
multiple of the heartbeat's interval (a third of it)."""
EXTEND = "AmazonSQS.ChangeMessageVisibilityBatch"
DELETE = "AmazonSQS.DeleteMessageBatch"
GARBAGE = "this is not JSON"


@pytest.fixture
def proxy(aws):
    proxy = FaultyProxy(upstream=aws.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def through(proxy: FaultyProxy) -> Any:
    """An SQS client whose calls go through the proxy to moto."""
    import boto3

    return boto3.client("sqs", endpoint_url=proxy.url, region_name="us-east-1")


def in_background(work) -> Future:
    """``work()`` in a thread; ``.result(timeout=...)`` bounds the wait for it."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


class Onlooker:
    """Another consumer of the queue (an overlapping cron run, say), polling
    moto directly while the sync works: what it receives had shown again
    mid-work. It takes nothing away (VisibilityTimeout 0: what it receives
    shows again at once), but each receive counts towards the redrive
    policy's maxReceiveCount, as it would in SQS."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Onlooker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.feed.sqs.receive_message(
                QueueUrl=self.feed.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                WaitTimeSeconds=0)
            self.seen.extend(m["Body"] for m in got.get("Messages", []))
            self._stop.wait(0.1)


def received(proxy: FaultyProxy) -> bool:
    """Whether the sync's first receive through the proxy has been answered."""
    receives = proxy.calls("AmazonSQS.ReceiveMessage")
    return bool(receives) and receives[0].answered is not None


def heartbeats_alive() -> bool:
    return any(t.name.endswith("-heartbeat") and t.is_alive() for t in threading.enumerate())


@contextmanager
def database_busy(store, seconds: float) -> Iterator[None]:
    """Another process's write transaction holds the SQLite database for
    ``seconds``: the sync's write waits for it in SQLite's busy handler."""
    blocker = sqlite3.connect(store.engine.url.database, isolation_level=None,
                              check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(seconds, blocker.rollback)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if blocker.in_transaction:
            blocker.rollback()
        blocker.close()


@pytest.mark.parametrize("slow", ["delete", "database write"])
def test_a_batch_that_outlives_the_visibility_timeout_stays_hidden(
    slow, feed, store, settings, proxy, caplog
):
    """The batch's slow part takes 2.5 times the visibility timeout. Its
    messages must not show again meanwhile (nobody else receives them, none
    goes to the dead-letter queue), except the unreadable one, which is left
    for the redrive policy as before. Extension stops once the batch is
    deleted: the run goes on long-polling the empty queue, extending nothing."""
    feed.sqs.set_queue_attributes(QueueUrl=feed.queue_url,
                                  Attributes={"VisibilityTimeout": str(VISIBILITY)})
    emails = add(store, 9)
    for email in emails[:5]:
        feed.send_raw(notification("bounce-permanent", [email]))
    for email in emails[5:]:
        feed.publish(notification("delivery", [email]))
    feed.send_raw(GARBAGE)
    if slow == "delete":
        proxy.slow(DELETE, SLOW)
    caplog.set_level(logging.WARNING, logger="subscribers.heartbeat")

    busy = database_busy(store, SLOW) if slow == "database write" else nullcontext()
    with busy:
        run = in_background(lambda: sync_queue(
            store, through(proxy), feed.queue_url, Policy(), receivers=1, wait_seconds=VISIBILITY))
        wait_until(lambda: received(proxy), 20)
        with Onlooker(feed) as onlooker:
            report = run.result(timeout=60)
            # The unreadable message was not extended: it showed, and the
            # redrive policy moved it on (the onlooker's receives count).
            wait_until(lambda: feed.counts(feed.dead_letters_url)[0] >= 1, 20)

    assert onlooker.seen and set(onlooker.seen) == {GARBAGE}
    assert feed.counts(feed.dead_letters_url) == (1, 0)
    assert (report.deleted, report.undeleted, report.applied.duplicates) == (9, 0, 0)
    assert (report.applied.bounced, report.applied.delivered) == (5, 4)
    assert [store.find(e).status for e in emails] == [Status.BOUNCED] * 5 + [Status.ACTIVE] * 4
    assert feed.counts() == (0, 0)
    dead = feed.sqs.receive_message(QueueUrl=feed.dead_letters_url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in dead["Messages"]] == [GARBAGE]

    extensions = proxy.calls(EXTEND)
    assert len(extensions) >= SLOW // VISIBILITY
    # The queue's own timeout, for the nine readable messages only.
    assert all(len(c.payload["Entries"]) == 9 for c in extensions)
    assert {e["VisibilityTimeout"] for c in extensions for e in c.payload["Entries"]} == {
        VISIBILITY}
    # None after the delete, while the run long-polls the empty queue for
    # another timeout (one may have been under way as the delete answered).
    wait_until(lambda: not heartbeats_alive(), 10)
    (delete,) = proxy.calls(DELETE)
    assert delete.answered is not None
    assert len([c for c in proxy.calls(EXTEND) if c.arrived > delete.answered]) <= 1
    assert not [r for r in caplog.records if r.name == "subscribers.heartbeat"]


def test_an_extension_refused_is_logged_and_the_batch_applied_once(
    feed, store, settings, proxy, caplog
):
    """Without sqs:ChangeMessageVisibility the batch shows again during a
    slow delete: an overlapping run receives it, finds it applied already,
    and deletes it. Nothing is lost or applied twice; the refusal is logged."""
    feed.sqs.set_queue_attributes(QueueUrl=feed.queue_url,
                                  Attributes={"VisibilityTimeout": str(VISIBILITY)})
    emails = add(store, 5)
    for email in emails:
        feed.send_raw(notification("bounce-permanent", [email]))
    proxy.refuse(EXTEND, 403, "AccessDenied", "not authorized to perform: "
                 "sqs:changemessagevisibility")
    proxy.slow(DELETE, SLOW)
    caplog.set_level(logging.WARNING, logger="subscribers.heartbeat")

    first = in_background(lambda: sync_queue(
        store, through(proxy), feed.queue_url, Policy(), receivers=1))
    wait_until(lambda: received(proxy), 20)
    wait_until(lambda: feed.counts() == (5, 0), 20)  # shown again mid-delete
    overlapping = sync_one(feed, store)
    report = first.result(timeout=60)

    assert (overlapping.received, overlapping.applied.duplicates) == (5, 5)
    assert overlapping.deleted == 5
    assert report.applied.bounced == 5 and report.deleted + report.undeleted == 5
    assert event_counts(settings)["bounced"] == 5
    assert all(store.find(e).status == Status.BOUNCED for e in emails)
    assert feed.counts() == (0, 0) and feed.counts(feed.dead_letters_url) == (0, 0)
    assert proxy.calls(EXTEND)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("could not extend the visibility of 5 messages" in w
                            and "AccessDenied" in w for w in warnings)


def test_without_leave_to_read_the_queue_the_receive_asks_for_its_timeout(
    feed, store, proxy, caplog
):
    """Credentials without sqs:GetQueueAttributes: each receive asks for a
    visibility timeout of its own, which the heartbeat then keeps up."""
    from subscribers.sqs import ASKED_VISIBILITY

    emails = add(store, 3)
    for email in emails:
        feed.send_raw(notification("delivery", [email]))
    proxy.refuse("AmazonSQS.GetQueueAttributes", 403, "AccessDenied", "not authorized")
    caplog.set_level(logging.WARNING, logger="subscribers.sqs")

    report = in_background(lambda: sync_queue(
        store, through(proxy), feed.queue_url, Policy(), receivers=1)).result(timeout=60)

    assert (report.received, report.deleted, report.applied.delivered) == (3, 3, 3)
    receives = proxy.calls("AmazonSQS.ReceiveMessage")
    assert receives and all(c.payload["VisibilityTimeout"] == ASKED_VISIBILITY
                            for c in receives)
    assert "allow sqs:GetQueueAttributes" in caplog.text


def test_the_stand_in_extends_visibility_as_sqs_does(store, settings, monkeypatch):
    """bench/bench_events.py's stand-in honours ChangeMessageVisibilityBatch:
    a batch outliving its timeout during a slow delete stays hidden, and is
    deleted."""
    from tests.support.sqs_standin import SqsStandIn

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    standin = SqsStandIn(visibility_timeout=VISIBILITY).start()
    proxy = FaultyProxy(upstream=standin.url).start()
    try:
        emails = add(store, 4)
        standin.put([json.dumps(notification("delivery", [e])) for e in emails])
        proxy.slow(DELETE, 2 * VISIBILITY)
        run = in_background(lambda: sync_queue(
            store, through(proxy), standin.queue_url, Policy(), receivers=1))
        # Four extensions, a third of the timeout apart: past the timeout.
        wait_until(lambda: len(proxy.calls(EXTEND)) >= 4, 20)
        assert standin.counts() == (0, 4)
        report = run.result(timeout=60)
        assert (report.received, report.deleted, report.undeleted) == (4, 4, 0)
        assert standin.counts() == (0, 0)
    finally:
        proxy.stop()
        standin.stop()


def test_an_extension_too_late_is_logged_and_the_batch_comes_back(
    store, settings, monkeypatch, caplog
):
    """An extension that reaches the queue after the batch showed again is
    refused message by message (MessageNotInflight); the run logs it, stops
    asking, and the batch comes back to be applied again, changing nothing.
    Against the stand-in: moto changes the visibility of a message that is
    no longer in flight without complaint, where SQS refuses."""
    from tests.support.sqs_standin import SqsStandIn

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    caplog.set_level(logging.WARNING, logger="subscribers.heartbeat")
    standin = SqsStandIn(visibility_timeout=VISIBILITY).start()
    proxy = FaultyProxy(upstream=standin.url).start()
    try:
        emails = add(store, 4)
        standin.put([json.dumps(notification("bounce-permanent", [e])) for e in emails])
        proxy.slow(EXTEND, 1.5 * VISIBILITY)
        proxy.slow(DELETE, 2 * VISIBILITY)
        # One batch: received again in this run, it would meet the same fate.
        first = in_background(lambda: sync_queue(
            store, through(proxy), standin.queue_url, Policy(), receivers=1, max_messages=4)
        ).result(timeout=60)
        assert first.applied.bounced == 4 and first.deleted + first.undeleted == 4
        assert len(proxy.calls(EXTEND)) == 1  # not asked again once refused
        assert standin.counts() == (first.undeleted, 0)  # shown again

        import boto3

        direct = boto3.client("sqs", endpoint_url=standin.url, region_name="us-east-1")
        again = in_background(lambda: sync_queue(
            store, direct, standin.queue_url, Policy(), receivers=1)).result(timeout=60)
        assert again.applied.bounced == 0
        assert again.deleted == again.applied.duplicates == first.undeleted
        assert standin.counts() == (0, 0)
        assert event_counts(settings)["bounced"] == 4
    finally:
        proxy.stop()
        standin.stop()
    warnings = [r.getMessage() for r in caplog.records if r.name == "subscribers.heartbeat"]
    assert len(warnings) == 4 and all("MessageNotInflight" in w for w in warnings)
