"""How the send loop holds up: pacing against an SES stand-in, and a very large list.

Targets: against an SES stand-in with 50 ms latency and MaxSendRate 200/s,
sustain at least 95% of 200/s and never exceed 200 in any one-second
window; send to 1,000,000 recipients in constant memory.

    python3 bench/bench_send.py                  # both parts
    python3 bench/bench_send.py --pacing-only --messages 4000
    python3 bench/bench_send.py --scale-only --recipients 1000000
    python3 bench/bench_send.py --throttling-only --messages 4000

Throttling: the same stand-in answering 429 to 1% and then 10% of calls at
random; targets at least 90% and 60% of the throughput of a run with none,
never over 200 in any one-second window.

Pacing: a real send (SQLite ledger, personalized messages, boto3 SESv2
SendEmail) against the fault-injecting proxy of the tests running as an
SES stand-in: it answers GetAccount with MaxSendRate 200, takes 50 ms per
SendEmail, and answers 429 like SES to any call over 200 in a second. The
rate and the windows are measured where the requests arrive.

Scale: a real send through the ledger and the send loop to N recipients
with an in-memory transport that accepts every message at once (SES would
take 1,000,000 / 200 s = 83 minutes; the loop, the ledger and the message
building are what must not grow). The list is written first, by another
process; the send runs in a fresh process that prints its resident memory
as it goes and its peak at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ISSUE = "issues/2026-12-01-calf-stretch.md"

if TYPE_CHECKING:
    from pipeline.outcome import SendResult
    from tests.support.faulty_proxy import FaultyProxy


def newsletter_copy(folder: Path) -> Path:
    root = folder / "newsletter"
    root.mkdir()
    fixture = ROOT / "tests" / "fixtures" / "newsletter"
    shutil.copy(fixture / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copytree(fixture / "issues", root / "issues")
    return root


def add_subscribers(root: Path, count: int) -> None:
    """Write ``count`` active subscribers straight into the table, in batches."""
    from sqlalchemy import insert

    from subscribers.db import connect, writing
    from subscribers.models import Source, Status
    from subscribers.schema import subscribers
    from subscribers.store.rows import new_row

    engine = connect("sqlite:///subscribers.db", root)
    names = ["Alex Morgan", "Sam", "Priya Natarajan", "", "Zoë Ünal", "José García"]
    batch = 20_000
    for start in range(0, count, batch):
        rows = [
            new_row(f"reader{i:07d}@example.com", names[i % len(names)], Status.ACTIVE,
                    Source.IMPORT)
            for i in range(start, min(count, start + batch))
        ]
        with writing(engine) as conn:
            conn.execute(insert(subscribers), rows)
    engine.dispose()


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---------------------------------------------------------------------------
# Pacing against the SES stand-in
# ---------------------------------------------------------------------------


def against_standin(
    messages: int, *, max_rate: float = 200, throttled: float = 0.0
) -> tuple[SendResult, FaultyProxy, float]:
    """One real send to ``messages`` recipients through the SES stand-in;
    returns the send's result, the stand-in (with what it saw) and the wall time."""
    from pipeline.config import load_settings
    from pipeline.publish import SendOptions, prepare_send
    from tests.support.faulty_proxy import FaultyProxy

    standin = FaultyProxy(upstream=None, latency=0.05, enforce_rate=True, keep_bodies=False)
    standin.set_quota(max_rate=max_rate, max_24h=10_000_000)
    if throttled:
        standin.throttle_randomly(throttled, seed=1)
    standin.start()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=standin.url,
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = newsletter_copy(Path(folder))
            add_subscribers(root, messages)
            settings = load_settings(root)
            started = time.monotonic()
            with prepare_send(settings, root / ISSUE, SendOptions(transport="ses")) as prepared:
                result = prepared.run()
            wall = time.monotonic() - started
    finally:
        standin.stop()
    return result, standin, wall


def rates(standin: FaultyProxy) -> tuple[float, float, float]:
    """(messages/s over the whole send, messages/s after its first second, its span)."""
    times = sorted(t for t, _, _ in standin.accepted)
    span = times[-1] - times[0]
    steady = [t for t in times if t - times[0] >= 1.0]
    steady_rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return (len(times) - 1) / span, steady_rate, span


def pacing(messages: int) -> None:
    result, standin, wall = against_standin(messages)
    overall, steady_rate, span = rates(standin)
    throttled = len(standin.attempts) - len(standin.accepted)
    print(f"SES stand-in: 50 ms per SendEmail, MaxSendRate 200/s, {messages:,} recipients")
    print(f"  sent:                       {result.sent:,} ({result.outcome}), "
          f"{result.failed} failed, in {wall:.1f} s with set-up")
    print(f"  threads / claim window:     {_threads(result)} / {result.window}")
    print(f"  sustained rate:             {overall:.1f}/s over {span:.1f} s "
          f"({overall / 200 * 100:.1f}% of 200/s); after the first second "
          f"{steady_rate:.1f}/s")
    print(f"  most in any 1-second window: {standin.max_in_window(1.0)} (limit 200)")
    print(f"  answered 429 by the stand-in: {throttled}")
    target = overall >= 190 and standin.max_in_window(1.0) <= 200
    print(f"  target (>= 95% of 200/s, never over 200 in a second): "
          f"{'met' if target else 'NOT met'}")


def throttling(messages: int) -> None:
    """Throughput when the provider throttles calls at random, against the
    same stand-in with no throttling as the baseline, in the same session."""
    targets = {0.01: 0.90, 0.10: 0.60}
    print(f"Random throttling: the SES stand-in (50 ms, MaxSendRate 200/s) answers 429 to "
          f"a share of calls, {messages:,} recipients each")
    baseline = None
    for share in (0.0, *targets):
        result, standin, _ = against_standin(messages, throttled=share)
        overall, _, _ = rates(standin)
        most = standin.max_in_window(1.0)
        sent = result.sent
        if baseline is None:
            baseline = overall
            print(f"  none throttled:  {overall:6.1f}/s (baseline), sent {sent:,}, "
                  f"most in a second {most}")
            continue
        ratio = overall / baseline
        met = ratio >= targets[share] and most <= 200 and sent == messages
        print(f"  {share:4.0%} throttled:  {overall:6.1f}/s, {ratio:.0%} of the baseline "
              f"(target {targets[share]:.0%}), sent {sent:,}, most in a second {most}: "
              f"{'met' if met else 'NOT met'}")


def _threads(result: object) -> int:
    from pipeline.send import pool_size

    return pool_size(4, getattr(result, "rate_limit", None))


# ---------------------------------------------------------------------------
# A very large list in constant memory
# ---------------------------------------------------------------------------


def scale(recipients: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = newsletter_copy(Path(folder))
        started = time.monotonic()
        subprocess.run([sys.executable, __file__, "--phase", "populate", str(root),
                        str(recipients)], check=True)
        print(f"{recipients:,} subscribers written in {time.monotonic() - started:.0f} s "
              "(another process)")
        done = subprocess.run([sys.executable, __file__, "--phase", "send", str(root)],
                              check=True, capture_output=True, text=True)
        report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"send to {report['total']:,} recipients (in-memory transport, one process):")
    print(f"  snapshot + site:            {report['prepare']:.1f} s")
    print(f"  send loop:                  {report['seconds']:.1f} s, "
          f"{report['sent'] / report['seconds']:,.0f} messages/s")
    for share, mb in report["samples"]:
        print(f"  RSS at {share:>4.0%} sent:            {mb:.0f} MiB")
    print(f"  peak RSS (ru_maxrss):       {report['peak_mb']:.0f} MiB")
    print(f"  sent {report['sent']:,}, outcome {report['outcome']}")


def phase_send(root: Path) -> None:
    from pipeline.config import load_settings
    from pipeline.publish import SendOptions, prepare_send
    from pipeline.send import Progress
    from pipeline.transports.memory import MemoryTransport

    settings = load_settings(root)
    samples: list[tuple[float, float]] = []
    marks = [0.01, 0.1, 0.25, 0.5, 0.75, 1.0]

    def progress(p: Progress) -> None:
        share = p.sent / max(1, p.total)
        while marks and share >= marks[0]:
            samples.append((marks.pop(0), rss_mb()))

    started = time.monotonic()
    with prepare_send(settings, root / ISSUE, SendOptions(transport="outbox")) as prepared:
        # Counted, not kept: the memory a million kept messages take is not the loop's.
        transport = MemoryTransport(keep=False)
        result = prepared.run(transport=transport, on_progress=progress)
    total = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "total": result.totals.total,
        "sent": result.sent,
        "outcome": result.outcome,
        "seconds": result.seconds,
        "prepare": total - result.seconds,
        "samples": samples,
        "peak_mb": peak,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000, help="recipients for pacing")
    parser.add_argument("--recipients", type=int, default=1_000_000, help="recipients for scale")
    parser.add_argument("--pacing-only", action="store_true")
    parser.add_argument("--scale-only", action="store_true")
    parser.add_argument("--throttling-only", action="store_true")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        if args.phase[0] == "populate":
            add_subscribers(Path(args.phase[1]), int(args.phase[2]))
        else:
            phase_send(Path(args.phase[1]))
        return
    if args.throttling_only:
        throttling(args.messages)
        return
    if not args.scale_only:
        pacing(args.messages)
        throttling(args.messages)
    if not args.pacing_only:
        scale(args.recipients)


if __name__ == "__main__":
    main()
