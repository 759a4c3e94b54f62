"""How fast `publish events sync` turns SES notifications into list changes.

Target: at least 1,000 notifications per second from a local queue.

    python3 bench/bench_events.py [--notifications 5000] [--latency-ms 10 30]
                                  [--moto 600]

A temporary newsletter root gets N subscribers and a send of an issue to
all of them, with a provider message id per recipient in the ledger, as
after a real send. The queue then holds one notification per subscriber,
as SES writes them: mostly deliveries, some permanent, transient and
undetermined bounces and complaints, in both SES shapes, half of them in
SNS's envelope. Each run is the whole `publish events sync` process under
/usr/bin/time -v (start-up, migrations check, boto3, the SQLite writes) and
is checked afterwards: every notification in the history once, the queue
empty.

1. against a local SQS stand-in (tests/support/sqs_standin.py: SQS's wire
   protocol over HTTP on loopback, constant-time operations), with no added
   latency, then with each --latency-ms on every call, as a round trip to a
   region would add (the sync's several receivers are there for this);
2. against moto's SQS server with --moto notifications. moto scans the
   whole queue, converting timestamps, on every call, so its calls slow
   down with the queue's length; this part shows that limit rather than
   the sync's.

Figures: notifications per second for the whole process, and for the sync
loop alone (from the command's own summary line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_authoring import publish_script  # noqa: E402


def make_root(folder: Path) -> Path:
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    return folder


def populate(root: Path, count: int) -> list[tuple[str, str]]:
    """``count`` active subscribers and a send to them; (email, message id) each."""
    from bench_subscribers import populate as add_subscribers
    from sqlalchemy import String, cast, literal, update

    from subscribers.ledger import Ledger
    from subscribers.schema import send_recipients
    from subscribers.store import Store

    add_subscribers(root, count)
    with Store.open("sqlite:///subscribers.db", root) as store:
        send, _ = Ledger(store.engine).start(
            "calf-stretch", "issues/2026-12-01-calf-stretch.md", "Subject", "ses"
        )
        with store.engine.begin() as conn:
            conn.execute(
                update(send_recipients)
                .where(send_recipients.c.send_id == send.id)
                .values(
                    status="sent",
                    message_id=literal("0100-bench-", String)
                    + cast(send_recipients.c.subscriber_id, String),
                )
            )
        return [
            (subscriber.email, f"0100-bench-{subscriber.id}") for subscriber in store.iter()
        ]


def notifications(recipients: list[tuple[str, str]]) -> list[str]:
    """One queue message per recipient, in the mix a send brings back."""
    from tests.support.ses_samples import envelope, notification

    topic = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
    bodies = []
    for n, (email, message_id) in enumerate(recipients):
        if n % 100 == 0:
            name = "complaint"
        elif n % 20 == 1:
            name = "bounce-permanent"
        elif n % 20 == 2:
            name = "bounce-transient"
        elif n % 50 == 3:
            name = "bounce-undetermined"
        else:
            name = "delivery"
        shape = "event-" if n % 3 else ""
        body = notification(name, [email], message_id=message_id, shape=shape)
        bodies.append(json.dumps(envelope(body, topic) if n % 2 else body))
    return bodies


def run_sync(script: str, root: Path, queue_url: str, endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "AWS_"))}
    env.update(
        NEWSLETTER_ROOT=str(root),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    out = subprocess.run(
        ["/usr/bin/time", "-v", script, "events", "sync", "--queue-url", queue_url,
         "--wait", "0"],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)
    elapsed = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    cpu = re.search(r"User time \(seconds\): ([\d.]+)\s+System time \(seconds\): ([\d.]+)",
                    out.stderr)
    loop = re.match(r"(\d+) messages? in ([\d.]+) s", out.stdout)
    assert elapsed and rss and cpu and loop, out.stdout + out.stderr
    hours, minutes, seconds = elapsed.groups()
    return {
        "wall": float(seconds) + 60 * int(minutes) + 3600 * int(hours or 0),
        "rss_mb": int(rss.group(1)) / 1024,
        "cpu": float(cpu.group(1)) + float(cpu.group(2)),
        "messages": int(loop.group(1)),
        "loop": float(loop.group(2)),
        "summary": out.stdout.strip(),
    }


def check(root: Path, count: int) -> None:
    """Every notification recorded once."""
    from sqlalchemy import func, select

    from subscribers.db import connect
    from subscribers.schema import subscriber_events

    engine = connect("sqlite:///subscribers.db", root)
    with engine.connect() as conn:
        recorded = conn.execute(
            select(func.count()).select_from(subscriber_events)
            .where(subscriber_events.c.external_id.is_not(None))
        ).scalar_one()
    engine.dispose()
    assert recorded == count, (recorded, count)


def report(label: str, count: int, figures: dict) -> None:
    print(f"  {label}")
    print(f"    whole process {figures['wall']:6.2f} s  {count / figures['wall']:7,.0f} "
          f"notifications/s   (CPU {figures['cpu']:.2f} s, peak RSS {figures['rss_mb']:.0f} MB)")
    print(f"    sync loop     {figures['loop']:6.2f} s  {count / figures['loop']:7,.0f} "
          f"notifications/s   target >= 1,000/s")
    print(f"    `{figures['summary']}`")


def bench_standin(script: str, count: int, latency: float) -> None:
    from tests.support.sqs_standin import SqsStandIn

    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        root = make_root(Path(tmp))
        bodies = notifications(populate(root, count))
        standin = SqsStandIn(latency=latency).start()
        try:
            standin.put(bodies)
            figures = run_sync(script, root, standin.queue_url, standin.url)
            assert figures["messages"] == count and standin.counts() == (0, 0), figures
            check(root, count)
            calls = standin.calls
        finally:
            standin.stop()
    report(f"SQS stand-in, {latency * 1000:.0f} ms per call ({calls.get('ReceiveMessage', 0)} "
           f"receives, {calls.get('DeleteMessageBatch', 0)} deletes):", count, figures)


def bench_moto(script: str, count: int) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.support.aws import free_port

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
            root = make_root(Path(tmp))
            bodies = notifications(populate(root, count))
            sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
            queue = sqs.create_queue(QueueName="ses-feedback")["QueueUrl"]
            started = time.perf_counter()
            for start in range(0, count, 10):
                sqs.send_message_batch(QueueUrl=queue, Entries=[
                    {"Id": str(i), "MessageBody": body}
                    for i, body in enumerate(bodies[start:start + 10])
                ])
            filled = time.perf_counter() - started
            figures = run_sync(script, root, queue, url)
            # moto's threaded server may hand two receivers the same message
            # (SQS delivers at least once too): received >= count, applied once.
            assert figures["messages"] >= count, figures
            check(root, count)
    finally:
        server.stop()
    report(f"moto's SQS server (filling it with {count:,} took {filled:.1f} s):", count, figures)


def bench_in_process(count: int) -> None:
    """parse + apply_feedback alone, ten notifications a transaction."""
    from subscribers.events import Policy, apply_feedback
    from subscribers.notifications import parse
    from subscribers.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        root = make_root(Path(tmp))
        bodies = notifications(populate(root, count))
        with Store.open("sqlite:///subscribers.db", root) as store:
            started = time.perf_counter()
            for start in range(0, count, 10):
                feedback = [f for body in bodies[start:start + 10] for f in parse(body).feedback]
                apply_feedback(store, feedback, Policy())
            seconds = time.perf_counter() - started
        check(root, count)
    print(f"  parse and apply in-process (no queue): {seconds:.2f} s, "
          f"{count / seconds:,.0f} notifications/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, nargs="*", default=[10.0, 30.0])
    parser.add_argument("--moto", type=int, default=600,
                        help="notifications for the moto part (0 to skip it)")
    args = parser.parse_args()
    script = publish_script()
    print(f"publish events sync, {args.notifications:,} notifications for as many subscribers "
          "(SQLite):")
    bench_standin(script, args.notifications, 0.0)
    for latency in args.latency_ms:
        bench_standin(script, args.notifications, latency / 1000)
    bench_in_process(args.notifications)
    if args.moto:
        bench_moto(script, args.moto)


if __name__ == "__main__":
    main()
