"""The shared sending budget: bookings on one timeline per account never
overlap, whoever makes them (SQLite and PostgreSQL); the pacer lets a call go
only in a slot booked for it; and two senders booking from one database
stay within the account's rate together."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from pipeline.pacing import TOLERANCE, Pacer, Slot
from pipeline.slots import SlotFeed
from subscribers.db import connect
from subscribers.errors import DatabaseUnavailable
from subscribers.ledger.slots import SendSlots
from tests.support.faulty_proxy import max_in_window


def test_bookings_never_overlap_whoever_makes_them(database_url, tmp_path):
    """Two bookers with engines of their own, as two processes have, booking
    at once: every booking begins where the one before it ended, or later."""
    engines = [connect(database_url, tmp_path) for _ in range(2)]
    bookings = []
    lock = threading.Lock()

    def book(engine) -> None:
        slots = SendSlots(engine, "ses:eu-west-1")
        for i in range(60):
            booking = slots.book(1 + i % 5, 0.001, rate=1000, ahead=60)
            assert booking is not None
            with lock:
                bookings.append(booking)
        slots.close()

    try:
        threads = [threading.Thread(target=book, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for engine in engines:
            engine.dispose()
    bookings.sort(key=lambda b: b.start)
    assert len(bookings) == 120
    for before, after in itertools.pairwise(bookings):
        assert after.start >= before.start + before.count * before.spacing - 1e-6


def test_a_booking_never_begins_too_far_ahead(tmp_path):
    engine = connect("sqlite:///budget.db", tmp_path)
    try:
        slots = SendSlots(engine, "ses:eu-west-1")
        first = slots.book(1, 0.2, rate=5, lead=0.05, ahead=0.5)
        assert first is not None and first.offset >= 0.05 - 1e-6, "no earlier than now + lead"
        taken = [slots.book(1, 0.2, rate=5, ahead=0.5) for _ in range(5)]
        assert None in taken, "past now + ahead, nothing is booked"
        assert SendSlots(engine, "ses:us-east-1").book(1, 0.2, rate=5) is not None, (
            "each account has its own timeline"
        )
    finally:
        engine.dispose()


def test_a_booking_maps_onto_this_clock_never_early():
    """The database's "now" fell between sent and received: a slot begins no
    earlier than received + offset, and a call may start until sent + offset
    + tolerance."""
    from pipeline.slots import slots_of
    from subscribers.ledger.slots import Booking

    booking = Booking(count=3, spacing=0.01, offset=0.002, sent=100.0, received=100.004)
    expected = [
        100.006,
        100.002 + TOLERANCE,
        100.016,
        100.012 + TOLERANCE,
        100.026,
        100.022 + TOLERANCE,
    ]
    got = [moment for slot in slots_of(booking) for moment in (slot.at, slot.latest)]
    assert got == pytest.approx(expected)
    slow = Booking(count=1, spacing=0.01, offset=0.0, sent=100.0, received=100.0 + 2 * TOLERANCE)
    pacer = Pacer(100, shared_rate=100)
    pacer.add_slots(slots_of(slow))
    assert pacer.slots_lost == 1, "an answer slower than the tolerance leaves no usable slot"


def test_a_slow_booking_keeps_its_slots_when_earlier_ones_bound_the_clocks():
    """The database's clock reads 900 s ahead of this one. A booking
    answered in 0.2 ms bounds the offset that tightly; one 0.1 s later,
    answered in twice the tolerance, still has slots no earlier than the
    database's and nearly the whole tolerance after (on its own round trip
    it would have none)."""
    from pipeline.slots import ClockOffset, slots_of
    from subscribers.ledger.slots import Booking

    def booking(sent: float, received: float, start: float, read: float) -> Booking:
        # The database read its clock at ``read`` (its own), which is here
        # ``read - 900``; the first slot begins at ``start``.
        return Booking(3, 0.01, start - read, sent, received, start)

    clock = ClockOffset()
    fast = booking(100.0, 100.0002, 1000.05, 1000.0001)
    clock.update(fast)
    slow = booking(100.1, 100.1 + 2 * TOLERANCE, 1000.15, 1000.101)
    lone = Pacer(100, shared_rate=100)
    lone.add_slots(slots_of(slow))
    assert lone.slots_lost == 3, "on its own round trip, no slot is usable"
    slots = slots_of(slow, clock.update(slow))
    for i, slot in enumerate(slots):
        true = 1000.15 + i * 0.01 - 900
        assert true <= slot.at <= true + 0.0003, "never early, and barely late"
        assert slot.latest - slot.at >= TOLERANCE - 0.0005
    shared = Pacer(100, shared_rate=100)
    shared.add_slots(slots)
    assert shared.slots_lost == 0


def test_bounds_widen_with_time_and_start_afresh_when_a_clock_steps():
    from pipeline.slots import DRIFT, ClockOffset
    from subscribers.ledger.slots import Booking

    clock = ClockOffset()
    low, high = clock.update(Booking(1, 0.01, 0.0, 100.0, 100.001, 1000.0))
    assert (low, high) == pytest.approx((-900.0, -899.999))
    # An hour on, with a 5 ms round trip: the old bounds have widened by
    # DRIFT × 3600 s = 3.6 s, so the new ones are the booking's own.
    later = clock.update(Booking(1, 0.01, 0.0, 3700.0, 3700.005, 4600.0))
    assert later == pytest.approx((-900.0, -899.995))
    assert DRIFT * 3600 > 0.005
    # The database's clock stepped 50 ms back: the bounds disagree with
    # the last, which are dropped, not narrowed into a wrong offset.
    stepped = clock.update(Booking(1, 0.01, 0.0, 3700.1, 3700.101, 4600.05))
    assert stepped == pytest.approx((-899.95, -899.949))


def test_a_shared_pacer_lets_calls_go_only_in_their_slots():
    pacer = Pacer(100, shared_rate=100)
    stop = threading.Event()
    now = time.monotonic()
    passed = Slot(now - 1.0, now - 1.0 + TOLERANCE)
    ahead = [Slot(now + 0.05 + i * 0.01, now + 0.05 + i * 0.01 + TOLERANCE) for i in range(3)]
    pacer.add_slots([passed, *ahead])
    readied: list[float] = []
    released = []

    def ready() -> bool:
        readied.append(time.monotonic())
        return True

    for _ in range(3):
        assert pacer.acquire(stop, ready=ready)
        released.append(time.monotonic())
    for slot, moment, handed in zip(ahead, released, readied, strict=True):
        assert moment >= slot.at, "never before its slot"
        assert handed <= moment, "the hand stamp comes first"
    assert pacer.slots_lost == 1, "the slot that had passed was let go"
    assert pacer.slots_used == 3


def test_a_rate_below_the_accounts_still_spaces_this_senders_calls():
    """--rate 20 on a 100/s account: slots come at the account's pace, calls
    at this sender's; the slots it skips are let go."""
    rate = 20
    pacer = Pacer(rate, shared_rate=100)
    stop = threading.Event()
    now = time.monotonic()
    pacer.add_slots([Slot(now + i * 0.0102, now + i * 0.0102 + TOLERANCE) for i in range(300)])
    moments = []
    for _ in range(rate + 5):
        assert pacer.acquire(stop)
        moments.append(time.monotonic())
    assert max_in_window(moments, 1.0) <= rate
    assert pacer.slots_used == rate + 5


def test_closing_the_slots_lets_a_waiting_thread_go():
    pacer = Pacer(100, shared_rate=100)
    stop = threading.Event()
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(pacer.acquire(stop)))
    thread.start()
    deadline = time.monotonic() + 10
    while pacer.slot_demand(0.05)[0] == 0:
        assert time.monotonic() < deadline
    pacer.close_slots()
    thread.join(10)
    assert got == [False]


@pytest.mark.parametrize("senders", [2])
def test_two_senders_booking_from_one_database_stay_within_the_rate(tmp_path, senders):
    """Two pacers, as two processes would have, each with its feeder and
    threads calling as fast as their slots let them: the calls of both
    together never exceed the rate in any second, and both get some."""
    rate, calls = 50, 150
    engines = [connect("sqlite:///budget.db", tmp_path) for _ in range(senders)]
    moments: list[list[float]] = [[] for _ in range(senders)]
    done = threading.Event()
    lock = threading.Lock()

    def call(index: int, pacer: Pacer) -> None:
        while not done.is_set():
            if not pacer.acquire(done):
                return
            with lock:
                moments[index].append(time.monotonic())
                if sum(len(m) for m in moments) >= calls:
                    done.set()

    feeds, threads = [], []
    for index, engine in enumerate(engines):
        pacer = Pacer(rate, shared_rate=rate)
        feeds.append(SlotFeed(pacer, SendSlots(engine, "ses:eu-west-1")).start())
        threads += [threading.Thread(target=call, args=(index, pacer)) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert done.wait(60)
    finally:
        done.set()
        for feed in feeds:
            feed.close()
        for thread in threads:
            thread.join(10)
        for engine in engines:
            engine.dispose()
    everything = [moment for some in moments for moment in some]
    assert max_in_window(everything, 1.0) <= rate
    assert all(len(some) >= 10 for some in moments), [len(some) for some in moments]


def test_a_feed_that_cannot_book_tells_the_send_and_lets_its_threads_go(tmp_path):
    engine = connect("sqlite:///budget.db", tmp_path)
    engine.dispose()
    Path(tmp_path / "budget.db").unlink()
    (tmp_path / "budget.db").mkdir()  # no database can be opened there now
    pacer = Pacer(50, shared_rate=50)
    failures: list[DatabaseUnavailable] = []
    feed = SlotFeed(pacer, SendSlots(engine, "ses:eu-west-1"), on_failure=failures.append)
    feed.start()
    try:
        assert not pacer.acquire(threading.Event())
    finally:
        feed.close()
    assert len(failures) == 1 and "could not be written" in str(failures[0])
