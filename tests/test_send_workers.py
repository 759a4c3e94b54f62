"""Senders that share one account's rate: two `publish worker` processes on a
real PostgreSQL against an SES stand-in never exceed its MaxSendRate
together, share the recipients, and one that is killed leaves its
recipients to the other; and a worker refuses SQLite."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import app
from subscribers.db import connect
from subscribers.ledger import Ledger
from subscribers.schema import send_recipients
from subscribers.store import Store
from tests.support.faulty_proxy import FaultyProxy
from tests.support.newsletter import ses_child_env
from tests.support.ses_sink import SesSink

RATE = 20
CALF = "2026-12-01-calf-stretch.md"
SECRET = "a-shared-secret-for-the-workers"


@pytest.fixture
def standin() -> Iterator[FaultyProxy]:
    """The SES stand-in on its own, MaxSendRate 20 and never refusing a call
    for its rate: every call the workers make is counted."""
    proxy = FaultyProxy(upstream=None, latency=0.02, keep_bodies=False)
    proxy.set_quota(max_rate=RATE, max_24h=1_000_000)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def due_send(newsletter: Path, postgres_url: str, count: int) -> list[str]:
    """``count`` readers, and the calf issue due since yesterday."""
    path = newsletter / "issues" / CALF
    head, rest = path.read_text(encoding="utf-8").split("\n", 1)
    path.write_text(f"{head}\npublish_at: 2026-11-30T07:00:00+00:00\n{rest}", encoding="utf-8")
    with Store.open(postgres_url, newsletter) as store:
        return [store.add(f"reader{i:04d}@example.com").email for i in range(count)]


def start_worker(
    newsletter: Path, postgres_url: str, standin: FaultyProxy | SesSink
) -> subprocess.Popen:
    env = ses_child_env(newsletter, postgres_url, standin.url, SECRET)
    command = [
        sys.executable,
        "-c",
        "from pipeline.cli import main; main()",
        "worker",
        "--poll",
        "0.2",
    ]
    return subprocess.Popen(
        command, cwd=newsletter, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, workers: list[subprocess.Popen], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        for worker in workers:
            if worker.poll() is not None:
                pytest.fail(f"a worker exited early: {worker.communicate()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(workers: list[subprocess.Popen]) -> list[tuple[str, str]]:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [w.returncode for w in workers] == [0] * len(workers), outputs
    return outputs


def send_done(postgres_url: str, newsletter: Path):
    """A check that the calf issue's send is done, for :func:`wait_for`."""
    engine = connect(postgres_url, newsletter)

    def done() -> bool:
        send = Ledger(engine).find("calf-stretch")
        return send is not None and send.status == "done"

    done.engine = engine  # type: ignore[attr-defined]
    return done


def ledger_rows(postgres_url: str, newsletter: Path) -> list:
    from sqlalchemy import select

    engine = connect(postgres_url, newsletter)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(send_recipients)))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_workers_never_exceed_the_accounts_rate_together(postgres_url, newsletter):
    """Counted as SES would count them: by when each call reached it (the
    sink's kernel timestamps, in a process of its own, so that this
    process's own scheduling does not move them)."""
    addresses = due_send(newsletter, postgres_url, 160)
    sink = SesSink(rate=RATE, latency=0.02).start()
    workers = [start_worker(newsletter, postgres_url, sink) for _ in range(2)]
    done = send_done(postgres_url, newsletter)
    try:
        wait_for(done, workers)
        stop(workers)
    finally:
        done.engine.dispose()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
        sink.stop()

    busiest = sink.max_in_window(1.0)
    assert busiest <= RATE, f"{busiest} calls in one second; the account allows {RATE}"
    assert busiest >= RATE * 0.8, "together they keep to the rate, not far below it"
    assert Counter(sink.recipients()) == Counter(addresses), "everyone exactly once"
    rows = ledger_rows(postgres_url, newsletter)
    assert {row.status for row in rows} == {"sent"}
    senders = Counter(row.claimed_by.split(":")[1] for row in rows)
    assert len(senders) == 2 and min(senders.values()) >= 10, senders


@pytest.mark.postgres
def test_a_killed_worker_leaves_its_recipients_to_the_other(postgres_url, newsletter, standin):
    addresses = due_send(newsletter, postgres_url, 160)
    doomed, survivor = (start_worker(newsletter, postgres_url, standin) for _ in range(2))
    done = send_done(postgres_url, newsletter)
    try:
        wait_for(lambda: len(standin.accepted) >= 40, [doomed, survivor])
        doomed.kill()
        doomed.wait(30)
        killed_at = time.monotonic()
        wait_for(done, [survivor])
        stop([survivor])
    finally:
        done.engine.dispose()
        for worker in (doomed, survivor):
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
    assert standin.max_in_window(1.0) <= RATE
    received = Counter(standin.recipients())
    twice = [address for address, times in received.items() if times > 1]
    # Only what the killed worker had handed to SES when it died can have
    # gone twice (sent again: a duplicate is better than a miss): a call or
    # two in flight per sending thread.
    assert len(twice) <= 4, twice
    assert set(received) == set(addresses)
    after = [moment for moment, _, _ in standin.accepted if moment > killed_at]
    assert after, "the survivor sent what the killed worker had claimed"
    rows = ledger_rows(postgres_url, newsletter)
    assert {row.status for row in rows} == {"sent"}


@pytest.mark.postgres
def test_a_worker_stopped_by_sigterm_finishes_its_calls_and_lets_go_of_the_rest(
    postgres_url, newsletter, standin
):
    addresses = due_send(newsletter, postgres_url, 160)
    stopping, staying = (start_worker(newsletter, postgres_url, standin) for _ in range(2))
    done = send_done(postgres_url, newsletter)
    try:
        wait_for(lambda: len(standin.accepted) >= 40, [stopping, staying])
        [(output, errors)] = stop([stopping])
        wait_for(done, [staying])
        stop([staying])
    finally:
        done.engine.dispose()
        for worker in (stopping, staying):
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
    assert "worker stopped:" in output, (output, errors)
    assert Counter(standin.recipients()) == Counter(addresses), (
        "everyone exactly once: what it had in flight was recorded, what it had "
        "claimed went back to the other"
    )
    assert standin.max_in_window(1.0) <= RATE


def test_a_worker_refuses_sqlite_in_one_line(newsletter):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: publish worker: shared sending needs PostgreSQL (database.url is SQLite): "
        "run publish due from cron instead"
    ]
    assert not (newsletter / "subscribers.db").exists(), "nothing was created"
