"""The send loop against real parts: the SQLite ledger, SES through moto
behind the fault-injecting proxy, and the outbox."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import replace
from email import policy
from email.parser import BytesParser

import pytest

from pipeline.errors import SendError
from pipeline.pacing import DECREASE, FLOOR, RECOVERY, WINDOW, Budget, Pacer, backoff
from pipeline.publish import SendOptions, prepare_send
from pipeline.send import Progress, claim_size, pool_size
from pipeline.transports.base import OutgoingMessage, Transport
from pipeline.transports.memory import MemoryTransport
from pipeline.transports.ses import SesTransport
from subscribers.db import connect
from subscribers.ledger import Ledger
from subscribers.schema import send_recipients
from subscribers.store import Store
from tests.support.faulty_proxy import Fault, max_in_window, moto_sent_messages

ISSUE = "2026-12-01-calf-stretch.md"


@pytest.fixture
def store(settings):
    with Store.open(settings.database_url, settings.root) as opened:
        yield opened


def add_subscribers(store, count: int, prefix: str = "reader") -> list[str]:
    addresses = [f"{prefix}{i:04d}@example.com" for i in range(count)]
    for i, address in enumerate(addresses):
        store.add(address, name=f"Reader {i}")
    return addresses


def run(settings, *, stop=None, on_progress=None, transport=None, **options):
    """Send the sample issue; ``transport`` is a name or a Transport object."""
    if isinstance(transport, Transport):
        options["transport"] = transport.name
    elif transport is not None:
        options["transport"], transport = transport, None
    with prepare_send(settings, settings.issues_dir / ISSUE, SendOptions(**options)) as prepared:
        return prepared.run(stop=stop, on_progress=on_progress, transport=transport)


def rows(settings) -> list:
    from sqlalchemy import select

    engine = connect(settings.database_url, settings.root)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(send_recipients).order_by(send_recipients.c.id)))
    finally:
        engine.dispose()


def outbox_recipients(settings) -> Counter:
    parser = BytesParser(policy=policy.default)
    return Counter(
        parser.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec
        for path in settings.outbox_dir.glob("*.eml")
    )


class Timed(Transport):
    """A real transport, with the moment of each call noted."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        with self._lock:
            self.calls.append(time.monotonic())
        return self.inner.send(message)

    def quota(self):
        return self.inner.quota()

    def max_in_window(self, seconds: float = 1.0) -> int:
        return max_in_window(self.calls, seconds)


# ---------------------------------------------------------------------------
# Through SES
# ---------------------------------------------------------------------------


def test_every_subscriber_gets_one_message_through_ses(ses, aws, settings, store):
    addresses = add_subscribers(store, 30)
    result = run(settings, transport="ses")

    assert result.outcome == "done"
    assert (result.sent, result.failed, result.skipped) == (30, 0, 0)
    stored = moto_sent_messages(aws.url)
    assert sorted(ses.recipients()) == addresses
    ledger_rows = rows(settings)
    assert {r.status for r in ledger_rows} == {"sent"}
    assert {r.message_id for r in ledger_rows} == {m["id"] for m in stored}
    assert all(r.claimed_by for r in ledger_rows)
    assert result.send.status == "done" and result.send.finished_at is not None
    page = settings.public_dir / "issues" / "calf-stretch" / "index.html"
    assert page.is_file(), "the view-in-browser page exists when the mail goes out"


def test_throttling_is_retried_and_every_message_still_sent(ses, settings, store):
    addresses = add_subscribers(store, 24)
    ses.throttle_calls(2, 5, 6, 11, 17)
    timed = Timed(SesTransport.from_settings(settings))
    result = run(settings, transport=timed, rate=20)

    assert result.outcome == "done"
    assert sorted(ses.recipients()) == addresses
    assert len(ses.attempts) == 24 + 5
    assert timed.max_in_window() <= 20


def test_the_rate_is_never_exceeded_in_any_second(ses, settings, store):
    add_subscribers(store, 60)
    ses.set_quota(max_rate=25, max_24h=10_000)
    ses.enforce_rate = True
    timed = Timed(SesTransport.from_settings(settings))
    result = run(settings, transport=timed)

    assert result.outcome == "done" and result.rate_limit == 25
    assert timed.max_in_window() <= 25
    assert len(ses.accepted) == 60


def test_rate_flag_lowers_but_never_raises_the_account_rate(ses, settings, store):
    add_subscribers(store, 3)
    ses.set_quota(max_rate=5, max_24h=10_000)
    assert run(settings, transport="ses", rate=50).rate_limit == 5


def test_the_daily_quota_pauses_the_send_and_says_when(ses, settings, store):
    addresses = add_subscribers(store, 25)
    ses.set_quota(max_rate=200, max_24h=10)
    result = run(settings, transport="ses")

    assert result.outcome == "paused"
    assert result.sent == 10 and result.failed == 0
    assert result.totals.pending == 15 and result.totals.sending == 0
    first_sent = min(r.sent_at for r in rows(settings) if r.sent_at)
    expected = first_sent.replace(tzinfo=dt.UTC) + dt.timedelta(hours=24)
    assert abs(result.paused_until - expected) < dt.timedelta(seconds=1)
    assert result.send.status == "paused"

    ses.set_quota(max_rate=200, max_24h=100)
    again = run(settings, transport="ses")
    assert again.outcome == "done" and again.sent == 15
    assert sorted(ses.recipients()) == addresses


def test_a_quota_error_from_ses_pauses_without_failing_anyone(ses, settings, store):
    add_subscribers(store, 12)
    ses.fail_with(400, "LimitExceededException", "Daily message quota exceeded.", after=5)
    result = run(settings, transport="ses")
    assert result.outcome == "paused"
    assert result.sent == 5 and result.failed == 0
    assert result.totals.pending == 7
    assert result.paused_until is not None


def test_a_rejected_address_fails_alone(ses, settings, store):
    add_subscribers(store, 10)
    ses.reject("reader0004@example.com", "Email address is not verified.")
    result = run(settings, transport="ses")

    assert result.outcome == "done"
    assert (result.sent, result.failed) == (9, 1)
    failed = [r for r in rows(settings) if r.status == "failed"]
    assert [r.email for r in failed] == ["reader0004@example.com"]
    assert "MessageRejected" in failed[0].error and "not verified" in failed[0].error
    assert "1 failed" in result.send.note

    ses.clear()
    retry = run(settings, transport="ses")
    assert retry.resumed.retried == 1 and retry.sent == 1
    assert ses.recipients().count("reader0004@example.com") == 1


def test_a_suspended_account_stops_the_send_cleanly(ses, settings, store):
    add_subscribers(store, 20)
    ses.fail_with(400, "AccountSuspendedException", "Your account is suspended.", after=6)
    result = run(settings, transport="ses", rate=50)

    assert result.outcome == "stopped"
    assert "suspended" in result.reason
    assert result.sent == 6 and result.failed == 0
    statuses = Counter(r.status for r in rows(settings))
    assert statuses == {"sent": 6, "pending": 14}
    assert result.send.status == "stopped"


def test_failures_in_a_row_stop_the_send(ses, settings, store):
    add_subscribers(store, 150)
    ses.fail_with(400, "MessageRejected", "Email address is not verified.")
    result = run(settings, transport="ses", rate=100)
    assert result.outcome == "stopped"
    assert "50 messages in a row failed" in result.reason
    assert "not verified" in result.reason
    assert 50 <= result.failed < 150 and result.totals.pending > 0


def test_temporary_failures_are_retried(ses, settings, store):
    addresses = add_subscribers(store, 5)
    ses.faults.append(
        Fault(500, "InternalFailure", "try again", lambda call, _r: call in (1, 3))
    )
    result = run(settings, transport="ses")
    assert result.outcome == "done" and result.sent == 5
    assert sorted(ses.recipients()) == addresses


def test_stop_finishes_in_flight_messages_and_leaves_nothing_in_sending(ses, settings, store):
    addresses = add_subscribers(store, 60)
    stop = threading.Event()

    def progress(p):
        if p.sent >= 10:
            stop.set()

    result = run(settings, transport="ses", rate=40, stop=stop, on_progress=progress)
    assert result.outcome == "interrupted"
    ledger_rows = rows(settings)
    assert not [r for r in ledger_rows if r.status == "sending"]
    sent = {r.email for r in ledger_rows if r.status == "sent"}
    assert sent == set(ses.recipients()), "what went out is exactly what the ledger says"
    assert 10 <= len(sent) < 60
    assert result.send.status == "interrupted"

    resumed = run(settings, transport="ses", rate=40)
    assert resumed.outcome == "done"
    assert sorted(ses.recipients()) == addresses


# ---------------------------------------------------------------------------
# Through the outbox
# ---------------------------------------------------------------------------


def test_a_subscriber_who_leaves_during_the_send_is_skipped(settings, store):
    addresses = add_subscribers(store, 40)
    leaving = store.get_by_email(addresses[-1])
    done = threading.Event()

    def progress(p):
        if p.sent >= 5 and not done.is_set():
            store.unsubscribe(leaving.id)
            done.set()

    result = run(settings, rate=40, on_progress=progress)
    assert result.outcome == "done"
    assert result.skipped == 1
    row = next(r for r in rows(settings) if r.email == addresses[-1])
    assert row.status == "skipped" and "unsubscribed" in row.error
    assert addresses[-1] not in outbox_recipients(settings)


def _crash_leftovers(settings, count: int, worker: str, *, handed: bool = True) -> list[int]:
    """Rows claimed (and handed to the transport, unless not ``handed``) by a
    worker that is gone, as a killed run leaves them."""
    engine = connect(settings.database_url, settings.root)
    try:
        ledger = Ledger(engine, worker=worker)
        send, _ = ledger.start("calf-stretch", "issues/" + ISSUE, "subject", "outbox")
        claimed, _ = ledger.claim(send.id, count)
        ids = [c.row_id for c in claimed]
        if handed:
            assert ledger.write(hand=ids) == set(ids)
        return ids
    finally:
        engine.dispose()


def _dead_worker() -> str:
    """A worker id on this host whose process does not exist."""
    import socket

    return f"{socket.gethostname()[:60]}:{2**22 + 12345}:deadbeef"


def test_ambiguous_rows_are_sent_again_by_default(settings, store):
    addresses = add_subscribers(store, 12)
    leftovers = _crash_leftovers(settings, 4, _dead_worker())
    # A transport that keeps no record of what it accepted (as SES): a
    # handed message without a result stays undecided.
    unrecorded = MemoryTransport(records=False)
    result = run(settings, transport=unrecorded)
    assert result.resumed.ambiguous == 4 and result.resumed.ambiguous_action == "resend"
    assert result.sent == 12
    assert Counter(m.recipient for m in unrecorded.outbox) == Counter(addresses)
    assert len(leftovers) == 4


def test_handed_rows_the_outbox_never_wrote_are_simply_pending_again(settings, store):
    addresses = add_subscribers(store, 12)
    _crash_leftovers(settings, 4, _dead_worker())
    result = run(settings, on_ambiguous="skip")
    assert (result.resumed.ambiguous, result.resumed.released) == (0, 4)
    assert result.sent == 12 and result.skipped == 0
    assert outbox_recipients(settings) == Counter(addresses)


def test_ambiguous_rows_can_be_skipped(settings, store):
    add_subscribers(store, 12)
    leftovers = set(_crash_leftovers(settings, 4, _dead_worker()))
    result = run(settings, on_ambiguous="skip", transport=MemoryTransport(records=False))
    assert result.resumed.ambiguous == 4 and result.sent == 8
    skipped = [r for r in rows(settings) if r.status == "skipped"]
    assert {r.id for r in skipped} == leftovers
    assert all("interrupted" in r.error for r in skipped)


def test_rows_claimed_but_never_handed_are_pending_again_not_ambiguous(settings, store):
    addresses = add_subscribers(store, 12)
    _crash_leftovers(settings, 5, _dead_worker(), handed=False)
    result = run(settings, on_ambiguous="skip")
    assert result.resumed.ambiguous == 0 and result.resumed.released == 5
    assert result.sent == 12 and result.outcome == "done"
    assert outbox_recipients(settings) == Counter(addresses)
    assert {r.attempts for r in rows(settings)} == {1}, "a claim never handed is no attempt"


def test_handed_rows_found_in_the_outbox_are_recorded_sent_not_sent_again(settings, store):
    from pipeline.context import Context
    from pipeline.personalize import Recipient
    from pipeline.publish import signed_personalizer as _personalizer
    from pipeline.sendplan import checked_issue
    from pipeline.transports.outbox import OutboxTransport

    addresses = add_subscribers(store, 10)
    leftovers = _crash_leftovers(settings, 4, _dead_worker())
    # The dead worker had written two of its four messages to the outbox.
    personalizer = _personalizer(
        settings, checked_issue(Context.load(settings), settings.issues_dir / ISSUE),
        message_id_seed="calf-stretch.1",
    )
    outbox = OutboxTransport(settings.outbox_dir)
    written = {}
    for row in rows(settings):
        if row.id in leftovers[:2]:
            written[row.id] = outbox.send(personalizer(Recipient(row.subscriber_id, row.email)))

    result = run(settings)
    assert (result.resumed.settled, result.resumed.released, result.resumed.ambiguous) == (2, 2, 0)
    assert result.outcome == "done" and result.sent == 8
    assert outbox_recipients(settings) == Counter(addresses), "each exactly once"
    by_id = {r.id: r for r in rows(settings)}
    assert {by_id[i].message_id for i in written} == set(written.values())


def test_claims_of_a_live_worker_are_waited_for_then_taken_back_when_its_lease_runs_out(
    settings, store, monkeypatch
):
    """A sender elsewhere holds three rows and renews its lease for a while,
    then falls silent: the run waits for it instead of leaving them, takes
    them back once the lease has run out, and finishes."""
    addresses = add_subscribers(store, 10)
    elsewhere = "another-host:4242:cafe"
    leftovers = _crash_leftovers(settings, 3, elsewhere, handed=False)
    engine = connect(settings.database_url, settings.root)
    beating = threading.Event()
    silent = threading.Event()

    def heartbeat() -> None:
        ledger = Ledger(engine, worker=elsewhere)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            ledger.heartbeat(1, force=True)
            beating.set()
            time.sleep(0.2)
        silent.set()

    thread = threading.Thread(target=heartbeat)
    thread.start()
    try:
        beating.wait(10)
        settings = replace(settings, send_lease=1.0)
        started = time.monotonic()
        result = run(settings)
    finally:
        thread.join()
        engine.dispose()
    assert silent.is_set(), "the run waited while the other sender was alive"
    assert time.monotonic() - started >= 2.0
    assert result.outcome == "done" and result.totals.left == 0
    assert result.resumed.released == 3 and not result.resumed.ambiguous
    assert outbox_recipients(settings) == Counter(addresses)
    assert {r.id for r in rows(settings) if r.status == "sent"} >= set(leftovers)


def test_rows_a_live_worker_finishes_are_waited_for_and_never_sent_twice(settings, store):
    from subscribers.ledger import Outcome

    addresses = add_subscribers(store, 10)
    elsewhere = "another-host:4242:cafe"
    leftovers = _crash_leftovers(settings, 3, elsewhere)
    engine = connect(settings.database_url, settings.root)

    def finish_them() -> None:
        ledger = Ledger(engine, worker=elsewhere)
        for _ in range(10):
            ledger.heartbeat(1, force=True)
            time.sleep(0.1)
        ledger.record([Outcome(row, "sent", message_id=f"elsewhere-{row}") for row in leftovers])

    thread = threading.Thread(target=finish_them)
    thread.start()
    try:
        result = run(replace(settings, send_lease=30.0))
    finally:
        thread.join()
        engine.dispose()
    assert result.outcome == "done" and result.sent == 7 and result.totals.sent == 10
    assert not result.resumed.ambiguous
    sent_here = outbox_recipients(settings)
    assert sum(sent_here.values()) == 7 and max(sent_here.values()) == 1
    assert set(sent_here) | {r.email for r in rows(settings) if r.id in leftovers} == set(
        addresses
    )


def test_an_address_that_cannot_be_mailed_fails_alone(settings, store):
    add_subscribers(store, 3)
    from sqlalchemy import update

    from subscribers.schema import subscribers

    with store.engine.begin() as conn:
        conn.execute(update(subscribers).where(subscribers.c.id == 2).values(email="jörg@example.com"))
    result = run(settings)
    assert (result.sent, result.failed) == (2, 1)
    failed = next(r for r in rows(settings) if r.status == "failed")
    assert "SMTPUTF8" in failed.error


def test_progress_is_reported_to_the_end(settings, store):
    add_subscribers(store, 30)
    seen: list[Progress] = []
    run(settings, rate=60, on_progress=seen.append)
    assert seen[-1].sent == 30 and seen[-1].left == 0
    assert [p.sent for p in seen] == sorted(p.sent for p in seen)
    assert all(p.total == 30 for p in seen)


def test_running_again_sends_nothing_new(settings, store):
    add_subscribers(store, 5)
    first = run(settings)
    again = run(settings)
    assert first.sent == 5 and again.sent == 0 and again.outcome == "done"
    assert again.send.finished_at == first.send.finished_at
    assert sum(outbox_recipients(settings).values()) == 5


def test_an_issue_scheduled_for_later_is_not_sent(settings, store):
    add_subscribers(store, 2)
    path = settings.issues_dir / ISSUE
    text = path.read_text().replace("date: 2026-12-01\n", "date: 2026-12-01\npublish_at: 2999-01-01T08:00:00Z\n", 1)
    path.write_text(text)
    with prepare_send(settings, path, SendOptions()) as prepared:
        assert prepared.plan.scheduled_for == dt.datetime(2999, 1, 1, 8, tzinfo=dt.UTC)
        with pytest.raises(SendError, match="scheduled"):
            prepared.run()
    assert not settings.outbox_dir.exists()


def test_no_active_subscribers_is_an_error(settings, store):
    with pytest.raises(SendError, match="no active subscribers"):
        run(settings)


def test_sent_issue_times(settings, store):
    from subscribers.ledger import sent_issue_times

    add_subscribers(store, 1)
    result = run(settings)
    assert sent_issue_times(store.engine) == {"calf-stretch": result.send.created_at}


# ---------------------------------------------------------------------------
# Pacing
# ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("rate", [1, 3.5, 14, 200])
def test_the_pacer_never_allows_more_than_rate_in_a_second(rate):
    clock = FakeClock()
    pacer = Pacer(rate, clock=clock)
    moments = []
    for i in range(int(rate * 5) + 5):
        moments.append(pacer.reserve())
        if i % 7 == 0:
            clock.now += 0.3  # calls arrive unevenly
    assert max_in_window(moments, 1.0) <= max(1, int(rate))


@pytest.mark.parametrize("rate", [1, 3.5, 14, 200])
def test_the_pacer_keeps_up_with_its_rate(rate):
    """Within 5% of the rate (a fractional rate counts in whole messages)."""
    pacer = Pacer(rate, clock=FakeClock())
    moments = [pacer.reserve() for _ in range(int(rate * 5) + 5)]
    achieved = (len(moments) - 1) / (moments[-1] - moments[0])
    assert 0.95 * max(1, int(rate)) <= achieved <= rate


def pace(pacer: Pacer) -> float:
    assert pacer.pace is not None
    return pacer.pace


def test_a_throttle_slows_the_pacer_a_little_and_it_recovers_in_seconds():
    clock = FakeClock()
    pacer = Pacer(100, clock=clock)
    pacer.throttled()
    assert pace(pacer) == pytest.approx(100 * DECREASE)
    # The next call waits for the new spacing, not for a pause of its own.
    assert pacer.reserve() <= clock.now + 1.5 * WINDOW / pace(pacer)
    # Calls that get through climb the pace back within RECOVERY seconds.
    started = clock.now
    while pace(pacer) < 100:
        clock.now = pacer.reserve()
        pacer.succeeded()
    assert clock.now - started <= RECOVERY


def test_throttling_on_every_call_brings_the_pace_down_to_its_floor():
    """An account whose real limit is far below its quota: throttles in a
    row cut deeper each time, so the pace comes down within a few calls."""
    clock = FakeClock()
    pacer = Pacer(200, clock=clock)
    for _ in range(15):
        clock.now = pacer.reserve()
        pacer.throttled()
    assert pace(pacer) == pytest.approx(200 * FLOOR)
    # One call getting through ends the streak: the next throttle is a small cut.
    pacer.succeeded()
    before = pace(pacer)
    pacer.throttled()
    assert pace(pacer) == pytest.approx(max(200 * FLOOR, before * DECREASE))


def simulated_throughput(rate, share, calls=6000, latency=0.05):
    """Messages per second through a pacer whose calls are throttled at random
    (seeded): each call is let go at its reserved moment, its answer comes
    ``latency`` later, and a throttled message is tried again."""
    import random

    clock = FakeClock()
    pacer = Pacer(rate, clock=clock)
    chance = random.Random(7)
    start = clock.now
    sent = 0
    answers: list[tuple[float, bool]] = []  # (moment, throttled) of calls in flight
    for _ in range(calls):
        moment = pacer.reserve()
        while answers and answers[0][0] <= moment:
            clock.now, throttled = answers.pop(0)
            if throttled:
                pacer.throttled()
            else:
                pacer.succeeded()
        clock.now = max(clock.now, moment)
        throttled = chance.random() < share
        sent += not throttled
        answers.append((moment + latency, throttled))
    return sent / (clock.now - start)


@pytest.mark.parametrize(("share", "least"), [(0.01, 0.90), (0.10, 0.60)])
def test_random_throttling_slows_the_send_but_does_not_stall_it(share, least):
    baseline = simulated_throughput(200, 0.0)
    assert baseline == pytest.approx(200 / WINDOW, rel=0.05)
    assert simulated_throughput(200, share) >= least * baseline


def test_pacer_acquire_returns_false_when_stopped():
    pacer = Pacer(0.1)
    stop = threading.Event()
    assert pacer.acquire(stop)
    stop.set()
    assert not pacer.acquire(stop)


def test_budget_and_backoff():
    budget = Budget(2.7)
    assert [budget.take() for _ in range(3)] == [True, True, False]
    budget.give_back()
    assert budget.take()
    assert Budget(None).take()
    delays = [backoff(n) for n in range(1, 12)]
    assert all(0 < d <= 20 for d in delays)
    assert backoff(1) <= 0.5


def test_pool_and_window_sizes():
    assert pool_size(4, None) == 4
    assert pool_size(4, 14) == 4
    assert pool_size(4, 200) == 20
    assert pool_size(4, 5000) == 64
    assert claim_size(200, 20) == 100
    assert claim_size(14, 4) == 8
    assert claim_size(None, 4) == 200
