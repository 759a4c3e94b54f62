"""Senders sharing one account: 1, 2 and 4 `publish worker` processes against
an SES stand-in with MaxSendRate 2,000/s and 20 ms per call.

Targets: together the workers never exceed 2,000 calls in any one-second
window and reach at least 95% of it; one worker alone, on one core, drives
at least 1,000 calls a second.

    python3 bench/bench_workers.py                    # 1, 2 and 4 workers
    python3 bench/bench_workers.py --workers 2 --seconds 10

Each run has a throwaway PostgreSQL database of its own (one server for the
whole bench, made with initdb as the tests make theirs), ``seconds`` worth
of subscribers at the account's rate, and the sample calf issue due. The
workers are real `publish worker` processes started together; the stand-in
(tests/support/faulty_proxy.py with ``upstream=None``) runs in this process,
never refuses a call for its rate, and logs when each call arrived: the
aggregate rate (from the first call to the last), the busiest one-second
window of arrivals, and the ratio of each to MaxSendRate are read from its
log. With one worker, the worker is pinned to the first core and the
stand-in to the second. The CPU the workers used per call is read from
/proc before they are stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CALF = "2026-12-01-calf-stretch.md"
SECRET = "a-secret-for-the-bench-workers-only"


def add_subscribers(url: str, root: Path, count: int) -> None:
    """``count`` active subscribers written straight into the table."""
    from sqlalchemy import insert

    from subscribers.db import connect, writing
    from subscribers.models import Source, Status
    from subscribers.schema import subscribers
    from subscribers.store.rows import new_row

    engine = connect(url, root)
    try:
        for start in range(0, count, 5000):
            rows = [
                new_row(f"reader{i:07d}@example.com", "Sam", Status.ACTIVE, Source.IMPORT)
                for i in range(start, min(count, start + 5000))
            ]
            with writing(engine) as conn:
                conn.execute(insert(subscribers), rows)
    finally:
        engine.dispose()


def newsletter(folder: Path) -> Path:
    from tests.support.newsletter import copy_newsletter

    root = copy_newsletter(folder / "newsletter")
    path = root / "issues" / CALF
    head, rest = path.read_text(encoding="utf-8").split("\n", 1)
    path.write_text(f"{head}\npublish_at: 2026-11-30T07:00:00+00:00\n{rest}", encoding="utf-8")
    return root


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_done(engine) -> bool:  # type: ignore[no-untyped-def]
    from subscribers.ledger import Ledger

    send = Ledger(engine).find("calf-stretch")
    return send is not None and send.status == "done"


def run(
    server, count: int, workers: int, rate: float, latency: float  # type: ignore[no-untyped-def]
) -> tuple[dict[str, float], list[str]]:
    """One send by ``workers`` workers to ``count`` readers: what the
    stand-in saw, and each worker's own account of its slots."""
    from tests.support.faulty_proxy import FaultyProxy

    database = f"bench_{workers}_{os.getpid()}_{int(time.time())}"
    server.admin(f'CREATE DATABASE "{database}"')
    url = server.url(database)
    standin = FaultyProxy(upstream=None, latency=latency, keep_bodies=False)
    standin.set_quota(max_rate=rate, max_24h=100_000_000)
    standin.start()
    own_cpu = time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        root = newsletter(Path(folder))
        add_subscribers(url, root, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "AWS_"))}
        env.update(
            NEWSLETTER_ROOT=str(root), NEWSLETTER_DATABASE_URL=url,
            NEWSLETTER_TOKEN_SECRET=SECRET, NEWSLETTER_TRANSPORT="ses",
            AWS_ENDPOINT_URL=standin.url, AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        )
        # The worker's own account of its slots and commits, on stderr.
        script = ("import logging; logging.basicConfig(format='%(message)s'); "
                  "logging.getLogger('pipeline.publish').setLevel(logging.INFO); "
                  "from pipeline.cli import main; main()")
        command = [sys.executable, "-c", script, "worker", "--poll", "0.5"]
        if workers == 1:
            command = ["taskset", "-c", "0", *command]
            os.sched_setaffinity(0, {1})
        procs = [subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for _ in range(workers)]
        from subscribers.db import connect

        engine = connect(url, root)
        try:
            cpu = 0.0
            while not send_done(engine):
                for proc in procs:
                    if proc.poll() is not None:
                        raise SystemExit(f"a worker exited: {proc.communicate()[1][-2000:]}")
                cpu = sum(cpu_seconds(proc.pid) for proc in procs)
                time.sleep(0.2)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            own_cpu = time.process_time() - own_cpu
            logs = [proc.communicate(timeout=60)[1] for proc in procs]
            engine.dispose()
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            standin.stop()
    server.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    times = sorted(t for t, _, _ in standin.accepted)
    span = times[-1] - times[0]
    # The middle 80% of the calls: every worker started, none run dry yet.
    first, last = times[len(times) // 10], times[len(times) * 9 // 10]
    accounts = [line for log in logs for line in log.splitlines() if "sending slots" in line]
    return {
        "calls": len(times),
        "distinct": len(set(standin.recipients())),
        "rate": (len(times) - 1) / span,
        "steady": (len(times) * 8 // 10) / (last - first),
        "busiest": standin.max_in_window(1.0),
        "cpu_ms": cpu / len(times) * 1000,
        "standin_ms": own_cpu / len(times) * 1000,
        "span": span,
    }, accounts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=8.0, help="of sending at the full rate")
    parser.add_argument("--rate", type=float, default=2000.0, help="the account's MaxSendRate")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per SendEmail")
    args = parser.parse_args()

    from tests.support.postgres import OwnPostgres

    count = int(args.rate * args.seconds)
    server = OwnPostgres(Path(tempfile.mkdtemp(prefix="bench-workers-pg-")))
    print(f"SES stand-in: MaxSendRate {args.rate:g}/s, {args.latency * 1000:g} ms per call; "
          f"{count:,} recipients per run; PostgreSQL 15 on this machine ({os.cpu_count()} cores)")
    try:
        for workers in args.workers:
            got, accounts = run(server.server, count, workers, args.rate, args.latency)
            share = got["steady"] / args.rate
            within = got["busiest"] <= args.rate
            if workers == 1:
                floor = min(1000.0, 0.95 * args.rate)
                target = got["steady"] >= floor and within
                goal = f">= {floor:,.0f}/s on one core"
            else:
                target = share >= 0.95 and within
                goal = ">= 95% of the rate"
            print(
                f"  {workers} worker{'s' if workers > 1 else ' '}: {got['steady']:7.1f} calls/s "
                f"({share:.1%} of MaxSendRate) in the middle 80% of the calls, "
                f"{got['rate']:.1f}/s over all {got['span']:.1f} s; busiest second "
                f"{got['busiest']:.0f} ({got['busiest'] / args.rate:.1%}); "
                f"{got['calls'] - got['distinct']:.0f} sent twice; "
                f"{got['cpu_ms']:.2f} ms CPU per call in the workers (start-up included), "
                f"{got['standin_ms']:.2f} in the stand-in; target ({goal}, never over the rate): "
                f"{'met' if target else 'NOT met'}"
            )
            if workers == 1:  # the worker has its core, the stand-in the other
                print(f"    CPU: {got['cpu_ms']:.2f} ms a call in the worker: at most "
                      f"{1000 / got['cpu_ms']:,.0f} calls/s on its core")
            else:
                cpu, cores = got["cpu_ms"] + got["standin_ms"], os.cpu_count() or 1
                print(f"    CPU: {cpu:.2f} ms a call in the workers and the stand-in, which "
                      f"share {cores} cores: at most {cores * 1000 / cpu:,.0f} calls/s, before "
                      "PostgreSQL and whatever else runs here")
            for line in accounts:
                print(f"    a worker: {line}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
