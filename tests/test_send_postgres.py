"""The ledger on SQLite and a real PostgreSQL, and two `publish issue`
processes sharing one send on PostgreSQL without sending anything twice."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from subscribers.db import connect
from subscribers.ledger import Ledger, Outcome, sent_issue_times
from subscribers.schema import send_recipients
from subscribers.store import Store

SECRET = "a-shared-secret-for-both-senders"


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def add(store, count: int) -> list[int]:
    return [store.add(f"r{i:04d}@example.com", name=f"R {i}").id for i in range(count)]


def test_a_send_snapshots_the_active_subscribers(store):
    ids = add(store, 6)
    store.unsubscribe(ids[0])
    ledger = Ledger(store.engine)
    send, created = ledger.start("calf", "issues/calf.md", "Subject", "ses")
    again, created_again = ledger.start("calf", "issues/calf.md", "Subject", "ses")

    assert created and not created_again and again.id == send.id
    assert ledger.totals(send.id).pending == 5
    store.add("late@example.com")
    assert ledger.totals(send.id).total == 5, "joining after the snapshot is not included"
    assert sent_issue_times(store.engine) == {"calf": send.created_at}


def test_claims_skip_leavers_and_record_outcomes(store):
    ids = add(store, 6)
    ledger = Ledger(store.engine)
    send, _ = ledger.start("calf", "issues/calf.md", "Subject", "ses")
    store.unsubscribe(ids[1])
    claimed, skipped = ledger.claim(send.id, 4)
    assert len(claimed) + len(skipped) == 4
    assert [o.error for o in skipped] in ([], ["unsubscribed since the send began"])

    first, second, *_ = claimed
    more, _ = ledger.claim(
        send.id,
        10,
        [Outcome(first.row_id, "sent", message_id="ses-1"),
         Outcome(second.row_id, "failed", error="SES MessageRejected: no")],
    )
    totals = ledger.totals(send.id)
    assert totals.sent == 1 and totals.failed == 1 and totals.skipped == 1
    assert totals.pending == 0 and totals.sending == len(claimed) - 2 + len(more)

    status = ledger.status(send.id)
    assert status.failures[0].reason == "SES MessageRejected: no"
    assert status.failures[0].examples == (second.email,)
    assert status.as_dict()["totals"]["total"] == 6


def test_resume_decides_a_dead_workers_rows(store):
    add(store, 5)
    dead = Ledger(store.engine, worker="elsewhere:1:dead")
    send, _ = dead.start("calf", "issues/calf.md", "Subject", "ses")
    claimed, _ = dead.claim(send.id, 3)
    dead.record([Outcome(claimed[0].row_id, "failed", error="boom")])
    assert dead.write(hand=[claimed[1].row_id]) == {claimed[1].row_id}

    ledger = Ledger(store.engine)
    assert ledger.live_workers(send.id) == ("elsewhere:1:dead",)
    first = ledger.resume(send.id)
    assert first.ambiguous == 0, "a fresh claim elsewhere is a live one"
    assert first.retried == 1, "the failed row is tried again"

    from sqlalchemy import update

    with store.engine.begin() as conn:
        conn.execute(
            update(send_recipients).values(
                updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            )
        )
    resumed = ledger.resume(send.id, "skip")
    assert (resumed.ambiguous, resumed.released, resumed.retried) == (1, 1, 0), (
        "only the row handed to the transport is undecided; the other is pending again"
    )
    totals = ledger.totals(send.id)
    assert (totals.skipped, totals.pending, totals.sending) == (1, 4, 0)


def test_a_silent_workers_rows_taken_back_are_never_handed_by_it(store):
    """A worker whose lease ran out (stopped, partitioned) and comes back may
    not send what was taken back from it: its hand stamps find nothing."""
    from sqlalchemy import update

    add(store, 4)
    lease = dt.timedelta(seconds=30)
    silent = Ledger(store.engine, worker="elsewhere:1:silent", lease=lease)
    send, _ = silent.start("calf", "issues/calf.md", "Subject", "ses")
    claimed, _ = silent.claim(send.id, 4)
    ids = [c.row_id for c in claimed]
    assert silent.write(hand=ids[:1]) == {ids[0]}
    survivor = Ledger(store.engine, lease=lease)
    assert not survivor.take_back(send.id), "a live lease is left alone"

    with store.engine.begin() as conn:
        conn.execute(
            update(send_recipients).values(
                updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
            )
        )
    taken = survivor.take_back(send.id)
    assert (taken.released, taken.ambiguous) == (3, 1)
    assert silent.write(hand=ids) == set(), "none of them may go out now"
    silent.heartbeat(send.id, force=True)
    # What it did send before is still a fact, recorded whoever holds the row.
    silent.record([Outcome(ids[0], "sent", message_id="ses-late")])
    totals = survivor.totals(send.id)
    assert (totals.sent, totals.pending, totals.sending) == (1, 3, 0)


def test_a_heartbeat_keeps_a_workers_rows_from_being_taken(store):
    from sqlalchemy import update

    add(store, 2)
    lease = dt.timedelta(seconds=30)
    worker = Ledger(store.engine, worker="elsewhere:1:alive", lease=lease)
    send, _ = worker.start("calf", "issues/calf.md", "Subject", "ses")
    worker.claim(send.id, 2)
    with store.engine.begin() as conn:
        conn.execute(
            update(send_recipients).values(
                updated_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
            )
        )
    worker.heartbeat(send.id, force=True)
    assert not Ledger(store.engine, lease=lease).take_back(send.id)
    assert Ledger(store.engine, lease=lease).live_workers(send.id) == ("elsewhere:1:alive",)


@pytest.mark.postgres
def test_concurrent_claims_never_overlap(postgres_url, tmp_path):
    with Store.open(postgres_url, tmp_path) as store:
        add(store, 400)
        send, _ = Ledger(store.engine).start("calf", "issues/calf.md", "Subject", "ses")
        got: list[list[int]] = [[] for _ in range(4)]

        def worker(index: int) -> None:
            ledger = Ledger(store.engine)
            while True:
                claimed, _ = ledger.claim(send.id, 7)
                if not claimed:
                    return
                got[index].extend(c.row_id for c in claimed)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = [row for rows in got for row in rows]
        assert len(everything) == len(set(everything)) == 400
        assert sum(1 for rows in got if rows) >= 2


def outbox_recipients(folder: Path) -> Counter:
    parser = BytesParser(policy=policy.default)
    return Counter(
        parser.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec
        for path in folder.glob("*.eml")
    )


@pytest.mark.postgres
def test_two_processes_share_one_send(postgres_url, newsletter, settings):
    count = 300
    with Store.open(postgres_url, newsletter) as store:
        addresses = [store.add(f"reader{i:04d}@example.com").email for i in range(count)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_ROOT=str(newsletter),
        NEWSLETTER_DATABASE_URL=postgres_url,
        NEWSLETTER_TOKEN_SECRET=SECRET,
    )
    command = [sys.executable, "-c", "from pipeline.cli import main; main()", "issue",
               "issues/2026-12-01-calf-stretch.md", "--yes", "--rate", "60"]

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, cwd=newsletter, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    first = start()
    engine = connect(postgres_url, newsletter)
    try:
        deadline = time.monotonic() + 60
        while _sent(engine) < 20:
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.05)
        second = start()
        outputs = [p.communicate(timeout=180) for p in (first, second)]
        assert [p.returncode for p in (first, second)] == [0, 0], outputs

        received = outbox_recipients(settings.outbox_dir)
        assert received == Counter(addresses), "everyone exactly once"
        from sqlalchemy import select

        with engine.connect() as conn:
            rows = list(conn.execute(select(send_recipients)))
        assert {r.status for r in rows} == {"sent"}
        workers = Counter(r.claimed_by.split(":")[1] for r in rows)
        assert len(workers) == 2 and min(workers.values()) > 0, workers
        send = Ledger(engine).find("calf-stretch")
        assert send is not None and send.status == "done"
    finally:
        engine.dispose()


def _sent(engine) -> int:
    from sqlalchemy import func, select

    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(send_recipients)
                .where(send_recipients.c.status == "sent")
            ).scalar_one()
        )


def test_a_provider_message_id_leads_back_to_its_send(store):
    from subscribers.ledger import SentMessage, sends_for_messages

    add(store, 2)
    ledger = Ledger(store.engine)
    send, _ = ledger.start("calf", "issues/calf.md", "Subject", "ses")
    claimed, _ = ledger.claim(send.id, 2)
    ledger.record([Outcome(claimed[0].row_id, "sent", message_id="0100abc-000000")])
    with store.engine.connect() as conn:
        assert sends_for_messages(conn, ["0100abc-000000"]) == {
            "0100abc-000000": SentMessage(send.id, "calf")
        }
        assert sends_for_messages(conn, ["unknown"]) == {}
        assert sends_for_messages(conn, [""]) == {}
        assert sends_for_messages(conn, ["0100abc-000000", "unknown", ""]) == {
            "0100abc-000000": SentMessage(send.id, "calf")
        }
    # An id longer than the ledger keeps is still found under the id as given.
    long_id = "0100def-" + "9" * 400
    ledger.record([Outcome(claimed[1].row_id, "sent", message_id=long_id)])
    with store.engine.connect() as conn:
        assert sends_for_messages(conn, [long_id]) == {long_id: SentMessage(send.id, "calf")}


def test_status_counts_provider_feedback_for_the_send(store):
    from subscribers.models import EventKind

    ids = add(store, 3)
    ledger = Ledger(store.engine)
    send, _ = ledger.start("calf", "issues/calf.md", "Subject", "ses")
    store.record_event(ids[0], EventKind.DELIVERED, send_id=send.id)
    store.record_event(ids[1], EventKind.DELIVERED, send_id=send.id)
    store.record_event(ids[2], EventKind.COMPLAINED, send_id=send.id)
    store.record_event(ids[2], EventKind.IMPORTED, send_id=send.id)
    assert ledger.status(send.id).events == {"delivered": 2, "complained": 1}
    assert ledger.status(send.id).as_dict()["events"] == {"delivered": 2, "complained": 1}
