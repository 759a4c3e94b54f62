"""A sender killed with SIGKILL in the middle of a send, then resumed: every
recipient ends up with one message, at most the in-flight window of them
with two, and nobody with none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from email.parser import BytesParser

import pytest

from pipeline.send import claim_size, pool_size
from subscribers.db import connect
from subscribers.schema import send_recipients
from subscribers.store import Store
from tests.support.aws import aws_env

ISSUE = "issues/2026-12-01-calf-stretch.md"
RATE = 40
COUNT = 150
WINDOW = claim_size(RATE, pool_size(4, RATE))
"""Recipients one run claims at a time: the most a crash can leave undecided."""


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


def wait_until(condition, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the send to get going")
        time.sleep(0.05)


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


def kill_mid_send(settings, env, cwd, *extra: str) -> Counter:
    """Start a send, SIGKILL it once a fifth has gone out; the ledger after."""
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), *extra, env=env, cwd=cwd)
    try:
        wait_until(lambda: ledger_counts(settings)["sent"] >= COUNT // 5 or sender.poll() is not None)
        assert sender.poll() is None, sender.communicate()
    finally:
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
    counts = ledger_counts(settings)
    assert counts["sent"] < COUNT, "killed too late to test anything"
    assert 0 < counts["sending"] <= WINDOW, "a crash leaves at most one window undecided"
    return counts


def finish(env, cwd, *extra: str) -> str:
    done = publish("issue", ISSUE, "--yes", *extra, env=env, cwd=cwd)
    out, err = done.communicate(timeout=180)
    assert done.returncode == 0, err
    return out


def test_outbox_send_killed_and_resumed(settings, subscribers, child_env, newsletter):
    before = kill_mid_send(settings, child_env, newsletter)
    out = finish(child_env, newsletter)
    if before["sending"]:
        assert f"{before['sending']} recipients were in flight" in out

    received = outbox_recipients(settings)
    assert set(received) == set(subscribers), "nobody is missing"
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= before["sending"] <= WINDOW
    assert ledger_counts(settings) == Counter({"sent": COUNT})


def test_skipping_ambiguous_recipients_never_duplicates(settings, subscribers, child_env,
                                                        newsletter):
    before = kill_mid_send(settings, child_env, newsletter)
    finish(child_env, newsletter, "--on-ambiguous", "skip")

    received = outbox_recipients(settings)
    assert max(received.values()) == 1, "no duplicates"
    after = ledger_counts(settings)
    assert after["skipped"] == before["sending"]
    assert after["sent"] + after["skipped"] == COUNT
    missing = set(subscribers) - set(received)
    assert len(missing) <= after["skipped"], "only skipped recipients can have been missed"


def test_ses_send_killed_and_resumed(settings, subscribers, child_env, newsletter, ses, aws):
    env = {**child_env, **{k: v for k, v in aws_env(aws).items() if k.startswith("AWS_")}}
    env["AWS_ENDPOINT_URL"] = ses.url
    env["NEWSLETTER_TRANSPORT"] = "ses"
    ses.set_quota(max_rate=RATE, max_24h=100_000)

    before = kill_mid_send(settings, env, newsletter)
    finish(env, newsletter)

    received = Counter(ses.recipients())
    assert set(received) == set(subscribers), "nobody is missing"
    assert sum(n - 1 for n in received.values()) <= before["sending"] <= WINDOW
    assert ledger_counts(settings) == Counter({"sent": COUNT})


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
