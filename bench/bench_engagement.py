"""How fast opens and clicks are counted (tracking.enabled), against the
events path's target of 1,000 events a second.

    python3 bench/bench_engagement.py [--events 20000] [--messages 4000]
                                      [--sync 5000] [--latency-ms 10]

A temporary newsletter root gets one subscriber per message and a send of
an issue to all of them, each with an SES message id in the ledger, as
after a real send. The events are SES Open and Click events as event
publishing writes them (tests/support/engagement.py): opens by readers,
machine opens (Apple's proxy), clicks on eight links with query strings,
and one event in twenty delivered twice; half in SNS's envelope.

1. the apply function: each body parsed (:func:`subscribers.notifications.parse`)
   and counted ten at a time (:func:`subscribers.events.count_engagement`,
   one transaction a batch, as `publish events sync` does with each
   receive), on SQLite in WAL mode; checked afterwards against the exact
   totals. Beside it, in the same run, a bare ``sqlite3`` loop inserting
   as many rows, ten to a committed transaction, with the same pragmas:
   the most SQLite gives this machine at that commit rate.
2. the whole `publish events sync` process, with tracking on, against the
   local SQS stand-in (tests/support/sqs_standin.py) with --latency-ms on
   every call.

No figure is asserted; the output says how each compares with the target.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_authoring import publish_script  # noqa: E402
from bench_events import make_root, populate, run_sync  # noqa: E402

BATCH = 10
"""Messages per SQS receive: what `publish events sync` counts in one transaction."""
SITE = "https://painfreeliving.example.com"


def events(message_ids: list[str], count: int) -> tuple[list[str], dict[str, int], int]:
    """``count`` event bodies about ``message_ids``, the totals they make, and
    how many different messages readers opened."""
    from tests.support.engagement import APPLE_PROXY, click_event, open_event
    from tests.support.ses_samples import envelope

    topic = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
    bodies: list[str] = []
    totals = {"opens": 0, "machine_opens": 0, "clicks": 0, "duplicates": 0}
    opened: set[str] = set()
    n = 0
    while len(bodies) < count:
        message_id = message_ids[n % len(message_ids)]
        if n % 4 == 3:
            link = f"{SITE}/issues/calf-stretch/{n // 4 % 8}/?utm_source=n{n}"
            body = click_event(message_id, link)
            totals["clicks"] += 1
        elif n % 7 == 0:
            body = open_event(message_id, agent=APPLE_PROXY)
            totals["machine_opens"] += 1
        else:
            body = open_event(message_id)
            totals["opens"] += 1
            opened.add(message_id)
        text = json.dumps(envelope(body, topic) if n % 2 else body)
        bodies.append(text)
        if n % 20 == 5 and len(bodies) < count:
            bodies.append(text)  # redelivered
            totals["duplicates"] += 1
        n += 1
    return bodies, totals, len(opened)


def bench_apply(total: int, messages: int) -> float:
    from subscribers.engagement import engagement_for
    from subscribers.events import Applied, Policy, count_engagement
    from subscribers.notifications import parse
    from subscribers.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-engagement-") as tmp:
        root = make_root(Path(tmp))
        ids = [message_id for _, message_id in populate(root, messages)]
        bodies, totals, opened = events(ids, total)
        with Store.open("sqlite:///subscribers.db", root) as store:
            policy = Policy(tracking=True)
            applied = Applied()
            started = time.perf_counter()
            for start in range(0, len(bodies), BATCH):
                parsed = [parse(body) for body in bodies[start:start + BATCH]]
                applied.add(count_engagement(store, parsed, policy))
            seconds = time.perf_counter() - started
            counts = engagement_for(store, "calf-stretch")
        got = {"opens": applied.opens, "machine_opens": applied.machine_opens,
               "clicks": applied.clicks, "duplicates": applied.duplicates}
        assert got == totals and applied.uncounted == 0, (got, totals)
        assert (counts.opens, counts.machine_opens, counts.clicks) == (
            totals["opens"], totals["machine_opens"], totals["clicks"])
    rate = len(bodies) / seconds
    print(f"1. the apply function (parse + count_engagement, {BATCH} a transaction), "
          f"{len(bodies):,} events about {messages:,} messages, SQLite:")
    print(f"   {seconds:6.2f} s  {rate:9,.0f} events/s   target >= 1,000/s "
          f"({rate / 1000:.1f}x)")
    print(f"   unique opens ≈ {counts.unique_opens:,} (exactly {opened:,} messages opened, "
          f"{(counts.unique_opens - opened) / opened:+.1%}), {len(counts.links)} links, "
          f"{counts.clicks:,} clicks")
    return rate


def bench_baseline(total: int) -> float:
    """A bare sqlite3 loop: ``total`` rows, ten to a committed transaction."""
    with tempfile.TemporaryDirectory(prefix="bench-engagement-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "bare.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE rows (key TEXT PRIMARY KEY, at TEXT NOT NULL)")
        started = time.perf_counter()
        for start in range(0, total, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO rows VALUES (?, ?)",
                             [(f"{n:064d}", "2026-12-01") for n in range(start, start + BATCH)])
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        conn.close()
    rate = total / seconds
    print(f"   baseline: bare sqlite3, {total:,} rows {BATCH} a transaction: {seconds:6.2f} s  "
          f"{rate:9,.0f} rows/s")
    return rate


def bench_sync(script: str, count: int, latency: float) -> None:
    from tests.support.sqs_standin import SqsStandIn

    with tempfile.TemporaryDirectory(prefix="bench-engagement-") as tmp:
        root = make_root(Path(tmp))
        config = root / "newsletter.toml"
        config.write_text(config.read_text().replace("enabled = false", "enabled = true", 1))
        ids = [message_id for _, message_id in populate(root, max(1, count // 5))]
        bodies, totals, _ = events(ids, count)
        standin = SqsStandIn(latency=latency).start()
        try:
            standin.put(bodies)
            figures = run_sync(script, root, standin.queue_url, standin.url)
            assert figures["messages"] == len(bodies) and standin.counts() == (0, 0), figures
        finally:
            standin.stop()
    loop = figures["messages"] / figures["loop"]
    print(f"2. publish events sync, tracking on, SQS stand-in with {latency * 1000:.0f} ms a "
          f"call, {figures['messages']:,} events:")
    print(f"   whole process {figures['wall']:6.2f} s  "
          f"{figures['messages'] / figures['wall']:7,.0f} events/s   sync loop "
          f"{figures['loop']:6.2f} s  {loop:7,.0f} events/s   target >= 1,000/s")
    print(f"   `{figures['summary']}`")
    assert f"{totals['opens']} opened" in figures["summary"], figures["summary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=4_000)
    parser.add_argument("--sync", type=int, default=5_000,
                        help="events for the whole-process run (0: skip it)")
    parser.add_argument("--latency-ms", type=float, default=10.0)
    args = parser.parse_args()
    rate = bench_apply(args.events, args.messages)
    baseline = bench_baseline(args.events)
    print(f"   the apply function runs at {rate / baseline:.0%} of the bare insert loop")
    if args.sync:
        bench_sync(publish_script(), args.sync, args.latency_ms / 1000)


if __name__ == "__main__":
    main()
