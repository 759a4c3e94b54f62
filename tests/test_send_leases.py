"""Claims are leases: a sender that dies has its recipients taken back by
the one that survives it, or by the next `publish due`, in the same run; a
live sender's lease is renewed, long transport calls included, and a run
that finds rows held by one waits for them instead of leaving them."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.schedule_lock import issue_lock
from subscribers.db import connect
from subscribers.ledger import Ledger
from subscribers.schema import send_recipients
from subscribers.store import Store
from tests.support.faulty_proxy import FaultyProxy

ISSUE = "issues/2026-12-01-calf-stretch.md"
SECRET = "a-shared-secret-for-both-senders"
COUNT = 200
RATE = 40


def publish(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def rows(url: str, root: Path) -> list:
    from sqlalchemy import select

    engine = connect(url, root)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(send_recipients)))
    finally:
        engine.dispose()


def pids_with_rows(url: str, root: Path) -> Counter:
    """Rows claimed (sending or sent) by each process id."""
    return Counter(
        r.claimed_by.split(":")[1] for r in rows(url, root) if r.claimed_by and r.status != "pending"
    )


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def waiting_for_a_lock() -> set[int]:
    """The processes waiting for a file lock (``->`` lines of /proc/locks)."""
    with open("/proc/locks", encoding="ascii") as locks:
        return {int(line.split()[5]) for line in locks if "->" in line.split()[1:2]}


def received(root: Path) -> Counter:
    parser = BytesParser(policy=policy.default)
    return Counter(
        parser.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec
        for path in (root / "outbox").glob("*.eml")
    )


def env_for(newsletter: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_ROOT=str(newsletter), NEWSLETTER_DATABASE_URL=url,
               NEWSLETTER_TOKEN_SECRET=SECRET)
    return env


def add_subscribers(url: str, root: Path, count: int = COUNT) -> list[str]:
    with Store.open(url, root) as store:
        return [store.add(f"reader{i:04d}@example.com").email for i in range(count)]


def schedule_in_the_past(newsletter: Path) -> None:
    path = newsletter / ISSUE
    text = path.read_text()
    path.write_text(
        text.replace("date: 2026-12-01\n", "date: 2026-12-01\npublish_at: 2026-01-01T07:00:00Z\n",
                     1)
    )


def kill_one_of_two(url: str, newsletter: Path, first, second, seed: int) -> tuple[str, str]:
    """Once both senders hold rows, SIGKILL one of them at a random point;
    the survivor's output."""
    wait_for(
        lambda: {str(first.pid), str(second.pid)} <= set(pids_with_rows(url, newsletter))
        or first.poll() is not None or second.poll() is not None,
        60, "both senders to share the send",
    )
    assert first.poll() is None and second.poll() is None, "both still sending"
    chance = random.Random(seed)
    time.sleep(chance.uniform(0.2, 1.5))
    victim, survivor = (first, second) if chance.random() < 0.5 else (second, first)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    out, err = survivor.communicate(timeout=180)
    assert survivor.returncode == 0, (out, err)
    return out, err


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2])
def test_the_survivor_of_two_senders_takes_back_the_dead_ones_recipients(
    postgres_url, newsletter, seed
):
    addresses = add_subscribers(postgres_url, newsletter)
    env = env_for(newsletter, postgres_url)
    command = ("issue", ISSUE, "--yes", "--rate", str(RATE))
    first = publish(*command, env=env, cwd=newsletter)
    wait_for(lambda: bool(pids_with_rows(postgres_url, newsletter)) or first.poll() is not None,
             60, "the first sender to start")
    second = publish(*command, env=env, cwd=newsletter)
    try:
        out, _ = kill_one_of_two(postgres_url, newsletter, first, second, seed)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "another process" not in out
    assert {r.status for r in rows(postgres_url, newsletter)} == {"sent"}, "nothing left over"
    assert received(newsletter) == Counter(addresses), "everyone exactly once"


@pytest.mark.postgres
def test_two_overlapping_publish_due_runs_finish_the_send_when_one_dies(
    postgres_url, newsletter
):
    schedule_in_the_past(newsletter)
    addresses = add_subscribers(postgres_url, newsletter)
    env = env_for(newsletter, postgres_url)
    # Both runs find the issue due before either records its send: each
    # waits for the issue's lock, held here until both are waiting for it.
    with issue_lock(load_settings(newsletter, {}), newsletter / ISSUE):
        first = publish("due", "--rate", str(RATE), env=env, cwd=newsletter)
        second = publish("due", "--rate", str(RATE), env=env, cwd=newsletter)
        wait_for(lambda: {first.pid, second.pid} <= waiting_for_a_lock()
                 or first.poll() is not None or second.poll() is not None,
                 60, "both runs to find the issue due")
    try:
        out, _ = kill_one_of_two(postgres_url, newsletter, first, second, 3)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "another process" not in out
    assert {r.status for r in rows(postgres_url, newsletter)} == {"sent"}, "nothing left over"
    assert received(newsletter) == Counter(addresses), "everyone exactly once"


def test_the_next_publish_due_takes_up_a_killed_run_and_finishes_it(newsletter):
    schedule_in_the_past(newsletter)
    url = "sqlite:///subscribers.db"
    addresses = add_subscribers(url, newsletter, 120)
    env = env_for(newsletter, url)
    first = publish("due", "--rate", str(RATE), env=env, cwd=newsletter)
    try:
        wait_for(lambda: sum(1 for r in rows(url, newsletter) if r.status == "sent") >= 30
                 or first.poll() is not None, 60, "the send to get going")
        assert first.poll() is None
        time.sleep(random.Random(4).uniform(0.1, 0.5))  # anywhere between two commits
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    again = publish("due", env=env, cwd=newsletter)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, (out, err)
    assert "(resume)" in out
    assert {r.status for r in rows(url, newsletter)} == {"sent"}
    assert received(newsletter) == Counter(addresses), "everyone exactly once"


def test_the_lease_is_renewed_during_a_long_transport_call(newsletter, aws):
    """Each SendEmail takes 5 s, the lease is 1.5 s: while the calls are in
    flight another sender finds nothing to take back."""
    url = "sqlite:///subscribers.db"
    add_subscribers(url, newsletter, 8)
    standin = FaultyProxy(upstream=None, latency=5.0).start()
    standin.set_quota(max_rate=100, max_24h=1000)
    env = {
        **env_for(newsletter, url),
        "NEWSLETTER_TRANSPORT": "ses",
        "NEWSLETTER_SEND_LEASE": "1.5",
        "AWS_ENDPOINT_URL": standin.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_PROFILE", None)
    sender = publish("issue", ISSUE, "--yes", env=env, cwd=newsletter)
    engine = connect(url, newsletter)
    try:
        arrived = lambda: sum(1 for _, path in standin.requests if path.endswith("outbound-emails"))  # noqa: E731
        wait_for(lambda: arrived() >= 4 or sender.poll() is not None, 60, "calls in flight")
        other = Ledger(engine, worker="another-host:1:other", lease=dt.timedelta(seconds=1.5))
        send = other.find("calf-stretch")
        assert send is not None
        checked_until = time.monotonic() + 2.5
        while time.monotonic() < checked_until:
            taken = other.take_back(send.id)
            assert not taken, f"a live sender's claims were taken back: {taken}"
            assert not standin.accepted, "the calls are still in flight"
            time.sleep(0.1)
        out, err = sender.communicate(timeout=60)
    finally:
        engine.dispose()
        standin.stop()
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == 0, (out, err)
    assert sorted(standin.recipients()) == sorted(f"reader{i:04d}@example.com" for i in range(8))
