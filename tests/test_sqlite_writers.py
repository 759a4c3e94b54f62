"""Writers of two connections: how a write transaction waits for another's
lock on SQLite, and a signup over its network's limit on both databases."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from subscribers import db, signup
from subscribers.models import EventKind, Limit
from subscribers.service import Origin
from subscribers.signup import TooManySignups
from subscribers.store import Store


def _late_by(engine, path, hold: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds between another connection letting go of the write lock it
    held for ``hold`` seconds and a waiting writer of ``engine`` getting it."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    got: list[float] = []
    waiting = threading.Event()

    def write() -> None:
        waiting.set()
        with db.writing(engine) as conn:
            got.append(time.monotonic())
            conn.execute(text("SELECT 1"))

    writer = threading.Thread(target=write)
    writer.start()
    waiting.wait(10)
    time.sleep(hold)  # the other process's transaction, this long
    released = time.monotonic()
    blocker.execute("COMMIT")
    blocker.close()
    writer.join(10)
    assert got, "the writer never got the lock"
    return got[0] - released


def test_a_writer_gets_the_lock_within_milliseconds_of_its_release(tmp_path):
    """SQLite's own busy handler sleeps up to 25 ms, then 50 and 100 ms,
    between tries, so a writer that came while another process wrote
    would lose that long after the lock was free; this one tries every
    2 ms at most. The best of three, so that a loaded machine's scheduling
    does not decide it."""
    engine = db.connect("sqlite:///subscribers.db", tmp_path, busy_timeout=10)
    try:
        late = min(_late_by(engine, tmp_path / "subscribers.db", 0.3) for _ in range(3))
    finally:
        engine.dispose()
    assert late < 0.012


def test_a_writer_waits_the_busy_timeout_then_fails_and_keeps_its_wait(tmp_path):
    engine = db.connect("sqlite:///subscribers.db", tmp_path, busy_timeout=0.25)
    blocker = sqlite3.connect(tmp_path / "subscribers.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"), db.writing(engine):
            pass
        assert time.monotonic() - started >= 0.25
        blocker.execute("COMMIT")
        with db.writing(engine) as conn:  # the pooled connection, free again
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 250
    finally:
        blocker.close()
        engine.dispose()


def test_a_signup_over_its_network_s_limit_records_nothing(database_url, tmp_path):
    """The network's count is taken after the signup's rows are written:
    refusing must still undo them all."""
    store = Store.open(database_url, tmp_path)
    origin = Origin("192.0.2.7", "test")
    limit = Limit(1, 600)
    try:
        first = signup.subscribe(
            store, "a@example.com", "A", consent_text="yes", origin=origin, per_network=limit
        )
        assert first is not None
        for address in ("a@example.com", "b@example.com"):
            with pytest.raises(TooManySignups):
                signup.subscribe(
                    store, address, "B", consent_text="yes", origin=origin, per_network=limit
                )
        assert store.get_by_email("b@example.com") is None
        assert len(store.signups(first)) == 1
        assert store.count_events(first, EventKind.SUBSCRIBED) == 1
    finally:
        store.close()
