"""How fast personalized messages are built: the MIME once, the slots per recipient.

Target: at least 20,000 personalized messages per second on one core, token
signing included.

    python3 bench/bench_personalize.py [--messages 200000]

Recipients are a realistic mix: most with plain names, some with accented or
non-Latin names, some with none. The loop runs in one thread (one core); the
first message is parsed back with the email package as a sanity check.
"""

from __future__ import annotations

import argparse
import os
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

from pipeline.config import load_settings
from pipeline.context import Context
from pipeline.issue import load_issue
from pipeline.personalize import Personalizer, Recipient
from pipeline.render import render_issue
from subscribers.tokens import Signer

ROOT = Path(__file__).resolve().parent.parent
ISSUE = ROOT / "issues" / "2026-12-01-calf-stretch.md"
NAMES = ["Alex Morgan", "Sam", "Priya Natarajan", "", "Zoë Ünal", "José García", "李小龍",
         "Mary-Ann O'Neil", "Chris", "Dana Whitfield"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    settings = load_settings(ROOT)
    started = time.perf_counter()
    rendered = render_issue(load_issue(ISSUE), Context.load(settings))
    personalizer = Personalizer(
        rendered, settings, Signer("bench-secret-0123456789").unsubscribe,
        message_id_seed="calf-stretch.1",
    )
    setup = time.perf_counter() - started
    recipients = [
        Recipient(i, f"reader{i}@example.com", NAMES[i % len(NAMES)])
        for i in range(1, args.messages + 1)
    ]

    first = personalizer(recipients[0])
    parsed = BytesParser(policy=policy.default).parsebytes(first.raw)
    assert parsed.get_body(("html",)) is not None and not parsed.defects

    size = 0
    started = time.perf_counter()
    cpu = time.process_time()
    for recipient in recipients:
        size += len(personalizer(recipient).raw)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu

    rate = args.messages / elapsed
    print(f"render + build the MIME once:  {setup * 1000:.1f} ms")
    print(f"personalized messages:         {args.messages:,}")
    print(f"average message size:          {size / args.messages / 1024:.1f} KiB")
    print(f"time per message:              {elapsed / args.messages * 1e6:.1f} µs "
          f"({cpu / args.messages * 1e6:.1f} µs CPU)")
    print(f"messages per second, one core: {rate:,.0f}  (target >= 20,000: "
          f"{'met' if rate >= 20_000 else 'NOT met'})")


if __name__ == "__main__":
    main()
