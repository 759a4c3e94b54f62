"""Soak: a `publish issue` killed with SIGKILL again and again, each run resumed.

One send to N subscribers (default 10,000) is started, SIGKILLed at a random
point (seeded), resumed by a new `publish issue`, killed again, and so on K
times (default 20); a last run finishes it. After each kill it prints:

    undecided   rows the kill left handed to the transport without a result
                (on code without hand stamps: every row left in ``sending``)
    ambiguous   of those, what the next run could not settle from the
                transport's records and reported as in flight
    duplicates  messages the transport received a second time since the kill
    missing     recipients the ledger counts as decided (sent or skipped) who
                have received nothing, new since the kill

and the totals at the end, with everyone's final count of messages.

It runs once through the outbox (unpaced) and once through the SES stand-in
of bench_send.py (`FaultyProxy(upstream=None, latency=0.05)`, MaxSendRate
200/s, enforce_rate), each send in fresh processes as an editor would run
them. A few minutes on 2 cores with the defaults:

    python3 bench/bench_soak.py
    python3 bench/bench_soak.py --subscribers 2000 --kills 5 --transport outbox
    python3 bench/bench_soak.py --on-ambiguous skip --seed 7
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ISSUE = "issues/2026-12-01-calf-stretch.md"
SES_RATE = 200


@dataclass
class Kill:
    sent_before: int
    undecided: int
    ambiguous: int = 0
    duplicates: int = 0
    missing: int = 0


def ledger(root: Path) -> tuple[Counter, int, dict[str, str]]:
    """Rows by status, rows handed without a result (rows in ``sending`` when
    the ledger has no hand stamps), and each recipient's status."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(f"sqlite:///{root / 'subscribers.db'}")
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("send_recipients")}
            rows = conn.execute(
                text(
                    "SELECT email, status, "
                    + ("handed_at IS NOT NULL" if "handed_at" in columns else "1")
                    + " FROM send_recipients"
                )
            ).all()
    finally:
        engine.dispose()
    statuses = Counter(status for _, status, _ in rows)
    undecided = sum(1 for _, status, handed in rows if status == "sending" and handed)
    return statuses, undecided, {email: status for email, status, _ in rows}


def sent_count(root: Path) -> int:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(root / "subscribers.db", timeout=30)) as conn:
        return int(
            conn.execute("SELECT count(*) FROM send_recipients WHERE status = 'sent'").fetchone()[0]
        )


def outbox_received(root: Path) -> Counter:
    """Messages per recipient in the outbox, read from the file names."""
    folder = root / "outbox"
    if not folder.is_dir():
        return Counter()
    return Counter(
        name[: -len(".eml")].split("-", 3)[3]
        for name in os.listdir(folder)
        if name.endswith(".eml") and not name.startswith(".")
    )


def tally(received: Counter, statuses: dict[str, str]) -> tuple[int, int]:
    """(duplicates, missing) so far."""
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    missing = sum(
        1 for email, status in statuses.items() if status in ("sent", "skipped")
        and not received.get(email)
    )
    return duplicates, missing


def in_flight(output: str) -> int:
    """What a run reported undecided: in its warning when it starts (stderr),
    or its summary (stdout) if it lived to print it."""
    found = re.search(r"(\d+) recipients were (?:left )?in flight", output)
    return int(found.group(1)) if found else 0


def quiet_standin_errors() -> None:
    """A SIGKILLed client leaves the stand-in writing to a closed socket:
    not worth a traceback each time."""
    import socketserver

    def handle_error(self: socketserver.BaseServer, request: object, address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            socketserver.BaseServer.handle_error(self, request, address)  # type: ignore[arg-type]

    socketserver.ThreadingMixIn.handle_error = handle_error  # type: ignore[attr-defined]


def soak(
    transport: str,
    subscribers: int,
    kills: int,
    seed: int,
    on_ambiguous: str,
    log: Callable[[str], None] = print,
) -> list[Kill]:
    from tests.support.faulty_proxy import FaultyProxy

    # bench_send.py's newsletter and list (imported by name: bench/ is no package).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    bench_send = importlib.import_module("bench_send")
    newsletter_copy, add_subscribers = bench_send.newsletter_copy, bench_send.add_subscribers

    chance = random.Random(seed)
    standin = None
    with tempfile.TemporaryDirectory() as folder:
        root = newsletter_copy(Path(folder))
        add_subscribers(root, subscribers)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env["NEWSLETTER_ROOT"] = str(root)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p
        )
        if transport == "ses":
            standin = FaultyProxy(upstream=None, latency=0.05, enforce_rate=True,
                                  keep_bodies=False)
            standin.set_quota(max_rate=SES_RATE, max_24h=10_000_000)
            standin.start()
            env.update(NEWSLETTER_TRANSPORT="ses", AWS_ENDPOINT_URL=standin.url,
                       AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                       AWS_DEFAULT_REGION="us-east-1")
            env.pop("AWS_PROFILE", None)

        def received() -> Counter:
            found = Counter(standin.recipients()) if standin is not None else outbox_received(root)
            known = ledger(root)[2]
            return Counter({email: n for email, n in found.items() if email in known})

        command = [sys.executable, "-c", "from pipeline.cli import main; main()", "issue",
                   ISSUE, "--yes", "--on-ambiguous", on_ambiguous]
        results: list[Kill] = []
        seen_duplicates = seen_missing = 0
        try:
            for number in range(1, kills + 2):
                last = number == kills + 1
                process = subprocess.Popen(command, cwd=root, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if last:
                    out, err = process.communicate(timeout=1800)
                    if process.returncode != 0:
                        raise SystemExit(f"the last run failed: {err.strip()}")
                else:
                    statuses, _, _ = ledger(root)
                    left = subscribers - statuses["sent"] - statuses["skipped"]
                    share = left / (kills + 2 - number)
                    target = statuses["sent"] + chance.randint(1, max(2, int(share * 1.5)))
                    deadline = time.monotonic() + 600
                    while process.poll() is None and time.monotonic() < deadline:
                        if (root / "subscribers.db").exists() and sent_count(root) >= target:
                            break
                        time.sleep(0.01)
                    time.sleep(chance.uniform(0, 0.05))
                    process.send_signal(signal.SIGKILL)
                    out, err = process.communicate(timeout=60)
                if results:
                    # This run resumed after the previous kill: what it made of it.
                    previous = results[-1]
                    previous.ambiguous = in_flight(err + out)
                    statuses_now = ledger(root)[2]
                    duplicates, missing = tally(received(), statuses_now)
                    previous.duplicates = duplicates - seen_duplicates
                    previous.missing = missing - seen_missing
                    seen_duplicates, seen_missing = duplicates, missing
                    log(f"  kill {len(results):2d}: sent before {previous.sent_before:6,}  "
                        f"undecided {previous.undecided:4d}  ambiguous {previous.ambiguous:4d}  "
                        f"duplicates {previous.duplicates:4d}  missing {previous.missing:4d}")
                if not last:
                    statuses, undecided, _ = ledger(root)
                    results.append(Kill(statuses["sent"], undecided))
            final = received()
            statuses, _, by_email = ledger(root)
            nobody = sum(1 for email in by_email if not final.get(email))
            log(f"  end: {statuses['sent']:,} sent, {statuses['skipped']:,} skipped, "
                f"{sum(final.values()):,} messages received by {len(final):,} recipients; "
                f"{nobody} recipients received nothing")
        finally:
            if standin is not None:
                standin.stop()
    return results


def report(name: str, results: list[Kill]) -> None:
    total = Kill(0, sum(k.undecided for k in results), sum(k.ambiguous for k in results),
                 sum(k.duplicates for k in results), sum(k.missing for k in results))
    count = max(1, len(results))
    print(f"  {name} totals over {len(results)} kills: undecided {total.undecided} "
          f"(at most {max((k.undecided for k in results), default=0)} per kill), "
          f"ambiguous {total.ambiguous}, duplicates {total.duplicates} "
          f"({total.duplicates / count:.1f} per kill), missing {total.missing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--transport", choices=("outbox", "ses", "both"), default="both")
    parser.add_argument("--on-ambiguous", choices=("resend", "skip"), default="resend")
    args = parser.parse_args()
    passes = ("outbox", "ses") if args.transport == "both" else (args.transport,)
    quiet_standin_errors()
    for transport in passes:
        print(f"{transport}: {args.subscribers:,} subscribers, {args.kills} SIGKILLs, "
              f"seed {args.seed}, --on-ambiguous {args.on_ambiguous}")
        started = time.monotonic()
        results = soak(transport, args.subscribers, args.kills, args.seed, args.on_ambiguous)
        report(transport, results)
        print(f"  ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
