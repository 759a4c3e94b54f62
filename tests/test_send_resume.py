"""A sender killed with SIGKILL at a random (seeded) point of a send, then
resumed. Only what was handed to the transport and not yet recorded is left
undecided, at most one message per thread in flight; the rows it had claimed
but not handed are simply pending again. The outbox and SMTP settle even
those from their own records, so nobody gets two messages and nobody none;
through SES, at most the handed ones are sent twice (or, with
``--on-ambiguous skip``, missed)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from email.parser import BytesParser

import pytest

from pipeline.send import pool_size
from subscribers.db import connect
from subscribers.schema import send_recipients
from subscribers.store import Store
from tests.support.aws import aws_env
from tests.support.smtp import SMTP_PASSWORD, SMTP_USER

ISSUE = "issues/2026-12-01-calf-stretch.md"
RATE = 40
COUNT = 150
THREADS = pool_size(4, RATE)
"""Sending threads at RATE: the most messages a kill can leave undecided."""


def publish(*args: str, env: dict[str, str], cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ledger_counts(settings) -> Counter:
    from sqlalchemy import func, select

    engine = connect(settings.database_url, settings.root)
    try:
        with engine.connect() as conn:
            return Counter(
                {
                    status: count
                    for status, count in conn.execute(
                        select(send_recipients.c.status, func.count()).group_by(
                            send_recipients.c.status
                        )
                    )
                }
            )
    finally:
        engine.dispose()


def handed_unrecorded(settings) -> int:
    """Rows handed to the transport without a result: the undecided ones."""
    from sqlalchemy import func, select

    engine = connect(settings.database_url, settings.root)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(send_recipients)
                    .where(
                        send_recipients.c.status == "sending",
                        send_recipients.c.handed_at.is_not(None),
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def wait_until(condition, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the send to get going")
        time.sleep(0.02)


def outbox_recipients(settings) -> Counter:
    parser = BytesParser(policy=policy.default)
    return Counter(
        parser.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec
        for path in settings.outbox_dir.glob("*.eml")
    )


@pytest.fixture
def subscribers(settings) -> list[str]:
    addresses = [f"reader{i:04d}@example.com" for i in range(COUNT)]
    with Store.open(settings.database_url, settings.root) as store:
        for address in addresses:
            store.add(address, name="Reader")
    return addresses


@pytest.fixture
def child_env(newsletter):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_ROOT"] = str(newsletter)
    return env


def kill_mid_send(settings, env, cwd, seed: int, *extra: str) -> tuple[Counter, int]:
    """Start a send, SIGKILL it after a random share of it has gone out
    (seeded); the ledger and the handed-but-unrecorded rows after."""
    point = random.Random(seed).randint(COUNT // 10, COUNT * 3 // 4)
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), *extra, env=env, cwd=cwd)
    try:
        wait_until(lambda: ledger_counts(settings)["sent"] >= point or sender.poll() is not None)
        assert sender.poll() is None, sender.communicate()
        time.sleep(random.Random(seed).random() / RATE)  # anywhere between two results
    finally:
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
    counts = ledger_counts(settings)
    assert counts["sent"] < COUNT, "killed too late to test anything"
    handed = handed_unrecorded(settings)
    assert handed <= THREADS, f"{handed} undecided: at most one per thread in flight"
    return counts, handed


def finish(env, cwd, *extra: str) -> str:
    done = publish("issue", ISSUE, "--yes", *extra, env=env, cwd=cwd)
    out, err = done.communicate(timeout=180)
    assert done.returncode == 0, err
    assert "Traceback" not in err, err
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_outbox_send_killed_and_resumed_sends_everyone_exactly_once(
    settings, subscribers, child_env, newsletter, seed
):
    kill_mid_send(settings, child_env, newsletter, seed)
    out = finish(child_env, newsletter)

    assert "were in flight" not in out, "the outbox's files settle every handed recipient"
    assert outbox_recipients(settings) == Counter(subscribers), "each exactly once"
    assert ledger_counts(settings) == Counter({"sent": COUNT})


def test_skipping_ambiguous_recipients_through_the_outbox_skips_nobody(
    settings, subscribers, child_env, newsletter
):
    kill_mid_send(settings, child_env, newsletter, 4)
    finish(child_env, newsletter, "--on-ambiguous", "skip")

    assert outbox_recipients(settings) == Counter(subscribers), "nobody missed, nobody twice"
    assert ledger_counts(settings) == Counter({"sent": COUNT})


def ses_env(child_env, ses, aws) -> dict[str, str]:
    env = {**child_env, **{k: v for k, v in aws_env(aws).items() if k.startswith("AWS_")}}
    env["AWS_ENDPOINT_URL"] = ses.url
    env["NEWSLETTER_TRANSPORT"] = "ses"
    ses.set_quota(max_rate=RATE, max_24h=100_000)
    return env


@pytest.mark.parametrize("seed", [5, 6])
def test_ses_send_killed_and_resumed(settings, subscribers, child_env, newsletter, ses, aws,
                                     seed):
    env = ses_env(child_env, ses, aws)
    _, handed = kill_mid_send(settings, env, newsletter, seed)
    out = finish(env, newsletter)

    received = Counter(ses.recipients())
    assert set(received) == set(subscribers), "nobody is missing"
    assert sum(n - 1 for n in received.values()) <= handed <= THREADS
    if handed:
        assert f"{handed} recipients were in flight" in out
    assert ledger_counts(settings) == Counter({"sent": COUNT})


def test_ses_skipping_ambiguous_recipients_misses_at_most_those_in_flight(
    settings, subscribers, child_env, newsletter, ses, aws
):
    env = ses_env(child_env, ses, aws)
    _, handed = kill_mid_send(settings, env, newsletter, 7)
    finish(env, newsletter, "--on-ambiguous", "skip")

    received = Counter(ses.recipients())
    assert max(received.values()) == 1, "no duplicates"
    after = ledger_counts(settings)
    assert after["skipped"] == handed <= THREADS
    assert after["sent"] + after["skipped"] == COUNT
    assert len(set(subscribers) - set(received)) <= handed


def test_smtp_send_killed_and_resumed_sends_everyone_exactly_once(
    settings, subscribers, child_env, newsletter, smtp_server
):
    env = {
        **child_env,
        "NEWSLETTER_TRANSPORT": "smtp",
        "NEWSLETTER_SMTP_HOST": smtp_server.host,
        "NEWSLETTER_SMTP_PORT": str(smtp_server.port),
        "NEWSLETTER_SMTP_USERNAME": SMTP_USER,
        "NEWSLETTER_SMTP_PASSWORD": SMTP_PASSWORD,
        "SSL_CERT_FILE": str(smtp_server.cafile),
    }
    _, handed = kill_mid_send(settings, env, newsletter, 8)
    out = finish(env, newsletter)

    received = Counter(rcpt for message in smtp_server.messages for rcpt in message.rcpt_tos)
    assert set(received) == set(subscribers), "nobody is missing"
    # The log settles what the relay accepted and said so; left undecided is
    # only what it took in the instant before the kill, its answer unheard.
    ambiguous = in_flight(out)
    assert sum(n - 1 for n in received.values()) <= ambiguous <= handed <= THREADS
    assert ledger_counts(settings) == Counter({"sent": COUNT})


def in_flight(out: str) -> int:
    """The recipients a resumed run reported as undecided."""
    import re

    found = re.search(r"(\d+) recipients were in flight", out)
    return int(found.group(1)) if found else 0


def test_ctrl_c_stops_after_the_messages_in_flight(settings, subscribers, child_env, newsletter):
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), env=child_env, cwd=newsletter)
    try:
        wait_until(lambda: ledger_counts(settings)["sent"] >= COUNT // 5 or sender.poll() is not None)
        sender.send_signal(signal.SIGINT)
        out, err = sender.communicate(timeout=60)
    finally:
        if sender.poll() is None:
            os.kill(sender.pid, signal.SIGKILL)
    assert sender.returncode == 130, err
    assert "interrupted" in out
    counts = ledger_counts(settings)
    assert counts["sending"] == 0, "the ledger is consistent: nothing left undecided"
    assert 0 < counts["sent"] < COUNT
    assert sum(outbox_recipients(settings).values()) == counts["sent"]

    finish(child_env, newsletter)
    assert outbox_recipients(settings) == Counter(subscribers), "each exactly once"
