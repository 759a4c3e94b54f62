"""Opens and clicks (tracking.enabled): counted per issue and link, exactly
for totals and within HyperLogLog's error for uniques, through both events
paths (the SQS queue on moto, fed by an SNS topic and raw; POST /ses/events
on uvicorn with signed SNS posts), and never stored with anything that
names a reader. Bad input is ignored or counted once, never a 5xx, never a
change to a subscriber."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from pipeline.cli import app
from subscribers import db
from subscribers.engagement import engagement_for, hll, normalize_link
from subscribers.engagement.counting import _hash as counting_hash
from subscribers.engagement.counting import count
from subscribers.engagement.interactions import Interaction, is_machine_open, read_interaction
from subscribers.events import Policy, apply_notification
from subscribers.models import as_utc
from subscribers.notifications import parse
from subscribers.schema import (
    engagement_counts,
    engagement_issues,
    engagement_links,
    engagement_seen,
    store_keys,
    subscriber_events,
    subscribers,
    suppressions,
)
from subscribers.sqs import sync_queue
from subscribers.store import Store
from subscribers.web import create_app
from tests.support.aws import free_port
from tests.support.engagement import (
    APPLE_PROXY,
    GMAIL_PROXY,
    click_event,
    open_event,
    sent_to,
)
from tests.support.ses_samples import envelope
from tests.support.sns import TOPIC, FakeSns
from tests.support.web import config, serving
from tests.test_events_sqs import Feed, feed  # noqa: F401  (the fixture)

TRACKING = Policy(tracking=True)
ENGAGEMENT_TABLES = (engagement_issues, engagement_counts, engagement_links, engagement_seen)
SITE = "https://painfreeliving.example.com"


@pytest.fixture
def store(database_url, tmp_path) -> Iterator[Store]:
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def emails(count: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{n:03d}@example.com" for n in range(count)]


def apply(store: Store, body: dict, policy: Policy = TRACKING):  # type: ignore[no-untyped-def]
    return apply_notification(store, json.dumps(body), policy)


def subscriber_rows(engine) -> dict:  # type: ignore[no-untyped-def]
    """Every row of the subscriber tables: what opens and clicks never change."""
    with engine.connect() as conn:
        return {table.name: sorted(tuple(map(str, row)) for row in conn.execute(select(table)))
                for table in (subscribers, subscriber_events, suppressions)}


def stored_values(engine) -> list[str]:  # type: ignore[no-untyped-def]
    """Every value in the engagement tables and store_keys, as text (blobs
    as hex and as Latin-1)."""
    values = []
    with engine.connect() as conn:
        for table in (*ENGAGEMENT_TABLES, store_keys):
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        values += [value.hex(), value.decode("latin-1")]
                    else:
                        values.append(str(value))
    return values


def assert_nothing_names_a_reader(engine, addresses, message_ids) -> None:  # type: ignore[no-untyped-def]
    columns = {table.name: {c["name"] for c in inspect(engine).get_columns(table.name)}
               for table in ENGAGEMENT_TABLES}
    assert columns == {
        "engagement_issues": {"issue_slug", "salt", "salt_until"},
        "engagement_counts": {"issue_slug", "kind", "total", "registers"},
        "engagement_links": {"issue_slug", "link_key", "url", "clicks", "registers"},
        "engagement_seen": {"event_key", "expires_at"},
    }
    values = "\n".join(stored_values(engine))
    for secret in [*addresses, *message_ids]:
        assert secret not in values and secret.lower() not in values.lower()
        assert secret.encode().hex() not in values
    with engine.connect() as conn:
        times = [as_utc(t) for t in conn.execute(select(engagement_seen.c.expires_at)).scalars()]
    assert times and all(t is not None and (t.hour, t.minute, t.second, t.microsecond) == (
        0, 0, 0, 0) for t in times)  # kept to the day


# ---------------------------------------------------------------------------
# Reading the events, links and machines
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("link", "counted"), [
    (f"{SITE}/issues/calf-stretch/?utm_source=newsletter#top", f"{SITE}/issues/calf-stretch/"),
    ("HTTPS://PainFreeLiving.Example.com:443/a", f"{SITE}/a"),
    ("http://example.com:8080/x?y", "http://example.com:8080/x"),
    (f"{SITE}/unsubscribe/42.q8Zr0x7aB3kLm9nPq2sT4w", f"{SITE}/unsubscribe/{{token}}"),
    (f"{SITE}/confirm/42.7f3a.1733000000.q8Zr0x7aB3kLm9nPq2sT4w", f"{SITE}/confirm/{{token}}"),
    ("https://shop.example/r/Xy7Qp2Lm9KzT4vB8nW3cR1/deal", "https://shop.example/r/{token}/deal"),
    ("https://bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
    ("https://example.com", "https://example.com/"),
    ("javascript:alert(1)", None), ("mailto:dana@example.com", None), ("/relative", None),
    ("https://user:pw@example.com/", None), ("https://example.com:99999/", None),
    ("https://exa mple.com/", None), ("https://example.com/\x00", None), (42, None),
    (f"{SITE}/" + "a" * 2000, None),
])
def test_a_link_is_counted_without_its_query_fragment_or_token(link, counted):
    assert normalize_link(link) == counted


@pytest.mark.parametrize(("agent", "ip", "machine"), [
    (APPLE_PROXY, "203.0.113.9", True),
    (GMAIL_PROXY, "66.249.84.1", True),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "", True),
    (None, "192.0.2.1", True),
    ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko)", "17.58.1.2", True),
    ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko)", "192.0.2.1", False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/115.0", "2001:db8::1", False),
])
def test_machine_opens_are_told_by_their_user_agent_or_network(agent, ip, machine):
    assert is_machine_open(agent, ip) is machine


def interaction(body: dict | str) -> Interaction:
    found = parse(body if isinstance(body, str) else json.dumps(body)).interaction
    assert found is not None
    return found


def test_both_deliveries_of_an_event_read_the_same():
    body = open_event("0100-m-1")
    raw = parse(json.dumps(body))
    assert raw.ignored == "Open" and raw.feedback == ()  # nothing for list hygiene
    assert interaction(body) == interaction(envelope(body, TOPIC))
    assert (interaction(body).kind, interaction(body).message_id) == ("open", "0100-m-1")
    again = interaction(open_event("0100-m-1"))  # another open: another event
    assert again.fingerprint != interaction(body).fingerprint
    broken = read_interaction({"eventType": "Click", "mail": "no", "click": []})
    assert broken is not None and broken.problem
    assert read_interaction({"eventType": "Delivery"}) is None


@pytest.mark.parametrize("n", [0, 1, 2, 10, 50, 100, 200, 300])
def test_hyperloglog_is_exact_or_off_by_two_for_a_few_hundred(n):
    registers = hll.new()
    for item in range(n):
        hll.add(registers, int.from_bytes(_digest(f"{n}:{item}"), "big"))
    assert abs(hll.estimate(registers) - n) <= max(2, n // 100)


def test_hyperloglog_stays_within_its_error_for_many():
    registers, half = hll.new(), hll.new()
    for item in range(20_000):
        hll.add(registers, int.from_bytes(_digest(str(item)), "big"))
        if item % 2:
            hll.add(half, int.from_bytes(_digest(str(item)), "big"))
    assert abs(hll.estimate(registers) - 20_000) < 20_000 * 0.05
    merged = bytearray(half)
    hll.merge(merged, bytes(registers))
    assert merged == registers


def _digest(text: str) -> bytes:
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=8).digest()


# ---------------------------------------------------------------------------
# Counting, on SQLite and PostgreSQL
# ---------------------------------------------------------------------------


def near(estimate: int, n: int) -> bool:
    """Whether ``estimate`` is what registers over a random issue key can
    make of ``n`` distinct messages: each pair of them shares one of the
    4,096 registers with odds 1 in 4,096, and the estimate is off by about
    the number of registers shared, which passes 2 + n // 15 (4 for 40) for
    fewer than one key in 100,000."""
    return abs(estimate - n) <= 2 + n // 15


def test_opens_and_clicks_are_counted_per_issue_and_link(store):
    readers = emails(40)
    calf = sent_to(store, readers, "calf-stretch")
    wrist = sent_to(store, readers, "desk-wrist-routine")
    before = subscriber_rows(store.engine)
    for n, message_id in enumerate(calf):
        for _ in range(1 + n % 3):  # 40 messages opened 79 times by readers
            apply(store, open_event(message_id))
        if n < 10:
            apply(store, open_event(message_id, agent=APPLE_PROXY))
        if n < 25:
            apply(store, click_event(message_id, f"{SITE}/issues/calf-stretch/?utm_source=n{n}"))
        if n < 5:
            apply(store, click_event(message_id, f"{SITE}/shop#stretch-band"))
            apply(store, click_event(message_id, f"{SITE}/shop?ref={n}"))
    apply(store, open_event(wrist[0], agent=GMAIL_PROXY, issue="desk-wrist-routine"))

    calf_counts = engagement_for(store, "calf-stretch")
    assert (calf_counts.opens, calf_counts.machine_opens, calf_counts.clicks) == (79, 10, 35)
    # Exactly what registers over the issue's key make of the 40 messages...
    with store.engine.connect() as conn:
        salt = conn.execute(
            select(engagement_issues.c.salt).where(engagement_issues.c.issue_slug == "calf-stretch")
        ).scalar_one()
    registers = hll.new()
    for message_id in calf:
        hll.add(registers, counting_hash(bytes.fromhex(salt), message_id))
    assert calf_counts.unique_opens == hll.estimate(registers)
    # ...which is near 40 whatever the (random) key.
    assert near(calf_counts.unique_opens, 40)
    assert near(calf_counts.unique_machine_opens, 10)
    assert near(calf_counts.unique_clicks, 25)
    assert [(link.url, link.clicks) for link in calf_counts.links] == [
        (f"{SITE}/issues/calf-stretch/", 25), (f"{SITE}/shop", 10)]
    assert near(calf_counts.links[1].unique, 5)
    wrist_counts = engagement_for(store.engine, "desk-wrist-routine")
    assert (wrist_counts.opens, wrist_counts.machine_opens, wrist_counts.unique_machine_opens) == (
        0, 1, 1)
    assert engagement_for(store, "no-such-issue").opens == 0
    assert subscriber_rows(store.engine) == before
    assert_nothing_names_a_reader(store.engine, readers, calf + wrist)


def test_with_tracking_off_nothing_is_counted(store):
    [message_id] = sent_to(store, ["ana@example.com"])
    applied = apply(store, open_event(message_id), Policy())
    assert (applied.opens, applied.uncounted) == (0, 0)
    with store.engine.connect() as conn:
        for table in ENGAGEMENT_TABLES:
            assert conn.execute(select(table)).first() is None, table.name


def test_what_cannot_be_counted_is_left_out_and_said(store):
    [message_id] = sent_to(store, ["ana@example.com"])
    before = subscriber_rows(store.engine)
    test_send = open_event("0100-a-preview-the-ledger-never-saw-000000")  # tagged calf-stretch
    untagged = open_event(message_id, issue=None)  # the ledger says which issue
    bad_links = [click_event(message_id, link) for link in ("javascript:x", None, "http://")]
    no_message = open_event(message_id)
    del no_message["mail"]["messageId"]
    old = open_event(message_id, at=dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    results = [apply(store, body) for body in (test_send, untagged, *bad_links, no_message, old)]
    assert [r.uncounted for r in results] == [1, 0, 1, 1, 1, 1, 1]
    assert engagement_for(store, "calf-stretch").opens == 1
    assert engagement_for(store, "calf-stretch").links == ()
    assert subscriber_rows(store.engine) == before


def test_the_same_event_delivered_fifty_times_counts_once(store):
    [message_id] = sent_to(store, ["ana@example.com"])
    body = json.dumps(open_event(message_id))
    results = [apply_notification(store, body, TRACKING) for _ in range(50)]
    assert sum(r.opens for r in results) == 1 and sum(r.duplicates for r in results) == 49
    wrapped = [json.dumps(envelope(body, TOPIC)) for _ in range(3)]  # new SNS MessageIds
    assert all(apply_notification(store, w, TRACKING).duplicates == 1 for w in wrapped)
    batch = count(store.engine, [interaction(body)] * 10)
    assert (batch.opens, batch.duplicates) == (0, 10)
    counts = engagement_for(store, "calf-stretch")
    assert (counts.opens, counts.unique_opens) == (1, 1)


def test_after_thirty_days_the_issue_key_is_gone_and_uniques_stop(store):
    ids = sent_to(store, emails(3))
    start = dt.datetime.now(dt.UTC)
    count(store.engine, [interaction(open_event(i, at=start)) for i in ids[:2]], now=start)
    later = start + dt.timedelta(days=31)
    done = count(store.engine, [interaction(open_event(i, at=later)) for i in ids], now=later)
    assert done.opens == 3
    with store.engine.connect() as conn:
        assert conn.execute(select(engagement_issues.c.salt)).scalars().all() == [None]
        assert conn.execute(select(engagement_seen)).all() != []  # the later events' only
    counts = engagement_for(store, "calf-stretch")
    assert (counts.opens, counts.unique_opens) == (5, 2)
    assert counts.uniques_until is not None and counts.uniques_until < later


def test_concurrent_batches_about_a_new_issue_count_exactly(store):
    ids = sent_to(store, emails(40))
    batches = [[interaction(click_event(i, f"{SITE}/a?n={n}")) for i in ids[n::4]]
               for n in range(4)]
    start = threading.Barrier(4)

    def work(batch) -> None:  # type: ignore[no-untyped-def]
        start.wait(10)
        count(store.engine, batch)

    threads = [threading.Thread(target=work, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    counts = engagement_for(store, "calf-stretch")
    assert (counts.clicks, len(counts.links), counts.links[0].clicks) == (40, 1, 40)
    assert near(counts.unique_clicks, 40)


# ---------------------------------------------------------------------------
# Through SQS on moto: the SNS topic's envelopes, and raw delivery
# ---------------------------------------------------------------------------


def test_the_queue_path_counts_both_shapes_exactly(feed: Feed, settings):  # noqa: F811
    with Store.open(settings.database_url, settings.root) as store:
        readers = emails(30)
        ids = sent_to(store, readers)
        before = subscriber_rows(store.engine)
        repeated = open_event(ids[0])
        for n, message_id in enumerate(ids):
            send = feed.publish if n % 2 else feed.send_raw
            send(open_event(message_id))
            send(click_event(message_id, f"{SITE}/issues/calf-stretch/?n={n}"))
            if n < 6:
                send(open_event(message_id, agent=APPLE_PROXY))
        for _ in range(5):  # redelivered, both ways
            feed.publish(repeated)
            feed.send_raw(repeated)
        feed.send_raw(open_event("0100-not-in-the-ledger-000000"))
        feed.publish(click_event(ids[1], "not a link"))
        report = sync_queue(store, feed.sqs, feed.queue_url, TRACKING, receivers=1)
        assert report.received == 30 * 2 + 6 + 10 + 2 and report.kept == 0
        applied = report.applied
        assert (applied.opens, applied.machine_opens, applied.clicks) == (31, 6, 30)
        assert (applied.duplicates, applied.uncounted, report.ignored) == (9, 2, 0)
        counts = engagement_for(store, "calf-stretch")
        assert (counts.opens, counts.machine_opens, counts.clicks) == (31, 6, 30)
        assert near(counts.unique_opens, 30) and near(counts.unique_clicks, 30)
        assert counts.links[0].url == f"{SITE}/issues/calf-stretch/"
        assert subscriber_rows(store.engine) == before
        assert_nothing_names_a_reader(store.engine, readers, ids)
        assert feed.counts() == (0, 0)


def test_publish_events_sync_counts_with_the_setting_and_ignores_without(
    feed: Feed, settings, monkeypatch  # noqa: F811
):
    runner = CliRunner()
    with Store.open(settings.database_url, settings.root) as store:
        [message_id] = sent_to(store, ["ana@example.com"])
    sync = ["events", "sync", "--queue-url", feed.queue_url, "--wait", "0"]
    feed.publish(open_event(message_id))
    off = runner.invoke(app, sync)
    assert off.exit_code == 0, off.output
    assert "1 other events ignored" in off.stdout

    monkeypatch.setenv("NEWSLETTER_TRACKING", "true")
    feed.publish(open_event(message_id))
    feed.publish(click_event(message_id, f"{SITE}/?a=1"))
    feed.send_raw(open_event("0100-unknown-000000"))
    on = runner.invoke(app, sync)
    assert on.exit_code == 0, on.output
    assert "1 opened, 1 clicked" in on.stdout and "1 opens or clicks not counted" in on.stdout
    with Store.open(settings.database_url, settings.root) as store:
        assert (engagement_for(store, "calf-stretch").opens,
                engagement_for(store, "calf-stretch").clicks) == (1, 1)


# ---------------------------------------------------------------------------
# Through POST /ses/events: signed SNS posts
# ---------------------------------------------------------------------------


@pytest.fixture
def webhook(tmp_path: Path, fake_sns: FakeSns):  # type: ignore[no-untyped-def]
    engine = db.connect(f"sqlite:///{tmp_path / 'subscribers.db'}", tmp_path)
    port = free_port()
    app = create_app(engine, config(f"http://127.0.0.1:{port}", sns_topic_arns=(TOPIC,),
                                    tracking=True),
                     lambda message: None, mailer=False, sns_fetch=fake_sns.fetch)
    try:
        with serving(app, port) as url, httpx.Client(timeout=30) as client:
            def post(body: dict | str) -> int:
                text = body if isinstance(body, str) else json.dumps(body)
                message = json.dumps(fake_sns.notification(text))
                return client.post(f"{url}/ses/events", content=message).status_code
            yield Store(engine), post
    finally:
        engine.dispose()


def test_the_webhook_counts_opens_and_clicks_and_never_fails_on_bad_ones(webhook):
    store, post = webhook
    readers = emails(20)
    ids = sent_to(store, readers)
    before = subscriber_rows(store.engine)
    for message_id in ids:
        assert post(open_event(message_id)) == 200
        assert post(click_event(message_id, f"{SITE}/shop?utm_campaign=x")) == 200
    flood = open_event(ids[0], agent=APPLE_PROXY)
    assert {post(flood) for _ in range(50)} == {200}  # 50 SNS messages, one event
    junk = [open_event("0100-not-ours-000000"), click_event(ids[2], "javascript:void(0)"),
            click_event(ids[2], {"not": "a link"}), {"eventType": "Open", "mail": 7},
            open_event(ids[3], issue=None) | {"open": "garbage"}]
    assert {post(body) for body in junk} == {200}
    assert post("not JSON at all") == 400

    counts = engagement_for(store, "calf-stretch")
    assert (counts.opens, counts.machine_opens, counts.clicks) == (20, 1, 20)
    assert near(counts.unique_opens, 20)
    assert [(link.url, link.clicks) for link in counts.links] == [(f"{SITE}/shop", 20)]
    assert subscriber_rows(store.engine) == before
    assert_nothing_names_a_reader(store.engine, readers, ids)
