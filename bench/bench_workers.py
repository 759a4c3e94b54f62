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
(tests/support/ses_sink.py: an asyncio HTTP/1.1 server in a process of its
own) never refuses a call for its rate, and logs when each call arrived:
the aggregate rate, the busiest one-second window of arrivals, and the
ratio of each to MaxSendRate are read from its log. With one worker, the
worker is pinned to the first core and the stand-in to the second.

Where the CPU goes is read from /proc every SAMPLE seconds, for the
workers, the stand-in, PostgreSQL (the postmaster and its backends, exited
ones included) and this process (the load generator: it polls the send's
state): per call over the middle 80% of the calls (every worker started,
none run dry yet), and over the whole run (start-up included).
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CALF = "2026-12-01-calf-stretch.md"
SECRET = "a-secret-for-the-bench-workers-only"
SAMPLE = 0.2
"""Seconds between readings of the processes' CPU."""
PARTS = ("workers", "stand-in", "PostgreSQL", "load generator")


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


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User and system CPU a process has used so far (with ``children``,
    also that of its children it has waited for)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rpartition(b")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(postmaster: int) -> float:
    """CPU of the PostgreSQL server so far: the postmaster, the backends
    and helpers it has reaped, and those still running."""
    total = cpu_seconds(postmaster, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue  # gone meanwhile: its CPU is in the postmaster's children's
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def send_done(engine: Engine) -> bool:
    from subscribers.ledger import Ledger

    send = Ledger(engine).find("calf-stretch")
    return send is not None and send.status == "done"


def at(samples: list[tuple[float, ...]], moment: float, column: int) -> float:
    """A sampled counter's value at ``moment``, interpolated between samples."""
    before = max((s for s in samples if s[0] <= moment), default=samples[0], key=lambda s: s[0])
    after = min((s for s in samples if s[0] >= moment), default=samples[-1], key=lambda s: s[0])
    if after[0] == before[0]:
        return before[column]
    share = (moment - before[0]) / (after[0] - before[0])
    return before[column] + share * (after[column] - before[column])


def run(
    server: PostgresServer, count: int, workers: int, rate: float, latency: float
) -> tuple[dict[str, float], dict[str, tuple[float, float]], list[str]]:
    """One send by ``workers`` workers to ``count`` readers: what the
    stand-in saw, the CPU per call of each part (middle 80%, whole run), and
    each worker's own account of its slots."""
    from tests.support.newsletter import ses_child_env
    from tests.support.ses_sink import SesSink

    database = f"bench_{workers}_{os.getpid()}_{int(time.time())}"
    server.admin(f'CREATE DATABASE "{database}"')
    url = server.url(database)
    postmaster = int((server.folder / "data" / "postmaster.pid").read_text().split()[0])
    standin = SesSink(rate=rate, latency=latency, cpus={1} if workers == 1 else None).start()
    with tempfile.TemporaryDirectory() as folder:
        root = newsletter(Path(folder))
        add_subscribers(url, root, count)
        env = ses_child_env(root, url, standin.url, SECRET)
        # The worker's own account of its slots and commits, on stderr.
        script = (
            "import logging; logging.basicConfig(format='%(message)s'); "
            "logging.getLogger('pipeline.publish').setLevel(logging.INFO); "
            "from pipeline.cli import main; main()"
        )
        command = [sys.executable, "-c", script, "worker", "--poll", "0.5"]
        if workers == 1:
            command = ["taskset", "-c", "0", *command]
        from subscribers.db import connect

        engine = connect(url, root)
        samples: list[tuple[float, ...]] = []

        def sample() -> None:
            samples.append(
                (
                    time.monotonic(),
                    sum(cpu_seconds(proc.pid) for proc in procs),
                    standin.cpu_seconds(),
                    postgres_cpu(postmaster),
                    time.process_time(),
                )
            )

        procs: list[subprocess.Popen[str]] = []
        sample()
        procs = [
            subprocess.Popen(
                command,
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        try:
            while not send_done(engine):
                for proc in procs:
                    if proc.poll() is not None:
                        raise SystemExit(f"a worker exited: {proc.communicate()[1][-2000:]}")
                sample()
                time.sleep(SAMPLE)
            sample()
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            logs = [proc.communicate(timeout=60)[1] for proc in procs]
            engine.dispose()
            standin.stop()
    server.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    times = sorted(standin.arrivals)
    span = times[-1] - times[0]
    # The middle 80% of the calls: every worker started, none run dry yet.
    first, last = times[len(times) // 10], times[len(times) * 9 // 10]
    middle = len(times) * 8 // 10
    cpu = {
        part: (
            (at(samples, last, column) - at(samples, first, column)) / middle * 1000,
            (samples[-1][column] - samples[0][column]) / len(times) * 1000,
        )
        for column, part in enumerate(PARTS, start=1)
    }
    accounts = [line for log in logs for line in log.splitlines() if "sending slots" in line]
    return (
        {
            "calls": len(times),
            "distinct": len(set(standin.recipients())),
            "rate": (len(times) - 1) / span,
            "steady": middle / (last - first),
            "busiest": standin.max_in_window(1.0),
            "span": span,
        },
        cpu,
        accounts,
    )


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
    print(
        f"SES stand-in: MaxSendRate {args.rate:g}/s, {args.latency * 1000:g} ms per call; "
        f"{count:,} recipients per run; PostgreSQL 15 on this machine ({os.cpu_count()} cores)"
    )
    try:
        for workers in args.workers:
            load = os.getloadavg()[0]
            got, cpu, accounts = run(server.server, count, workers, args.rate, args.latency)
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
                f"{got['calls'] - got['distinct']:.0f} sent twice; target ({goal}, never "
                f"over the rate): {'met' if target else 'NOT met'}; load average "
                f"{load:.2f} before, {os.getloadavg()[0]:.2f} after"
            )
            steady = sum(middle for middle, _ in cpu.values())
            print(
                "    CPU ms per call, middle 80% (whole run, start-up included): "
                + ", ".join(
                    f"{part} {middle:.3f} ({whole:.3f})" for part, (middle, whole) in cpu.items()
                )
                + f"; all {steady:.3f}"
            )
            if workers == 1:  # the worker has its core, the stand-in the other
                worker = cpu["workers"][0]
                print(f"    the worker alone on its core: at most {1000 / worker:,.0f} calls/s")
            else:
                cores = os.cpu_count() or 1
                print(
                    f"    everything on {cores} cores: at most {cores * 1000 / steady:,.0f} "
                    f"calls/s; without the stand-in and the load generator, "
                    f"{cores * 1000 / (cpu['workers'][0] + cpu['PostgreSQL'][0]):,.0f}"
                )
            for line in accounts:
                print(f"    a worker: {line}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
