"""How fast the service's own messages are made: confirm and welcome.

They are built once from the templates (:mod:`pipeline.service_mail`) and
filled per reader (:mod:`subscribers.mail`), as an issue's are; this prints
the cost of building each, of filling one message, and of the cache check
each message makes (template files' stamps, the ledger's sends, issues/).
Before, :mod:`subscribers.mail` built each message with the email package:
about 0.7 ms a message here, 1 ms with its serialization.

    python3 bench/bench_service_mail.py [--messages 20000]

Readers are a mix of plain, accented and missing names. One core; the first
message of each kind is parsed back with the email package as a check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

from pipeline.config import load_settings
from pipeline.mailtexts import load_mail_templates
from pipeline.service_mail import ServiceMailSource, build_service_mail
from subscribers.mail import confirmation_message, welcome_message
from subscribers.models import Source, Status, Subscriber
from subscribers.tokens import Signer

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["Alex Morgan", "Sam", "Priya Natarajan", "", "Zoë Ünal", "José García", "李小龍"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    settings = load_settings(ROOT)
    started = time.perf_counter()
    templates = load_mail_templates(settings)
    for kind in ("confirm", "welcome"):
        build_service_mail(kind, templates, settings)
    built = (time.perf_counter() - started) / 2
    source = ServiceMailSource(settings)
    signer = Signer("bench-secret-0123456789")
    now = dt.datetime.now(dt.UTC)
    readers = [
        Subscriber(i, f"reader{i}@example.com", NAMES[i % len(NAMES)], Status.ACTIVE,
                   Source.FORM, now, now)
        for i in range(1, args.messages + 1)
    ]
    confirm, welcome = source.confirm(), source.welcome()

    def confirmation(reader: Subscriber) -> bytes:
        url = settings.url(f"confirm/{signer.confirm(reader.id, now, signup='n')}")
        return confirmation_message(confirm, reader, url).raw

    def welcoming(reader: Subscriber) -> bytes:
        return welcome_message(
            welcome, reader, settings.url(f"unsubscribe/{signer.unsubscribe(reader.id)}")
        ).raw

    print(f"built once: {built * 1000:.1f} ms a template (render, check, MIME)")
    for kind, fill in (("confirm", confirmation), ("welcome", welcoming)):
        parsed = BytesParser(policy=policy.default).parsebytes(fill(readers[0]))
        assert parsed.get_body(("html",)) is not None and not parsed.defects
        started = time.perf_counter()
        for reader in readers:
            fill(reader)
        each = (time.perf_counter() - started) / len(readers)
        print(f"{kind}: {each * 1e6:.1f} µs a message, link signing included")
    started = time.perf_counter()
    for _ in range(2000):
        source.welcome()
    print(f"cache check: {(time.perf_counter() - started) / 2000 * 1e6:.1f} µs a message")


if __name__ == "__main__":
    main()
