"""The database failing under a real `publish issue` process: an SQLite file
made read-only, an SQLite lock held by another connection, a PostgreSQL
server stopped or crashed. Nothing more goes to the transport once the
database cannot be written; a fault that passes within the retry bound
only pauses the send; one that does not ends it with one line naming the
cause, the results kept for the next run, which then sends nobody twice."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from pipeline.send import pool_size
from subscribers.db import connect
from subscribers.schema import send_recipients
from subscribers.store import Store

ISSUE = "issues/2026-12-01-calf-stretch.md"
RATE = 40
COUNT = 120
THREADS = pool_size(4, RATE)
SECRET = "a-secret-for-the-database-fault-tests"


def publish(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sent(url: str, root: Path) -> int:
    from sqlalchemy import func, select

    engine = connect(url, root)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(send_recipients)
                    .where(send_recipients.c.status == "sent")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def statuses(url: str, root: Path) -> Counter:
    from sqlalchemy import func, select

    engine = connect(url, root)
    try:
        with engine.connect() as conn:
            return Counter(
                dict(
                    conn.execute(
                        select(send_recipients.c.status, func.count()).group_by(
                            send_recipients.c.status
                        )
                    ).all()
                )
            )
    finally:
        engine.dispose()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def outbox(root: Path) -> list[Path]:
    return sorted((root / "outbox").glob("*.eml"))


def received(root: Path) -> Counter:
    parser = BytesParser(policy=policy.default)
    return Counter(
        parser.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec for path in outbox(root)
    )


def written_after(root: Path, moment_ns: int) -> int:
    return sum(1 for path in outbox(root) if path.stat().st_mtime_ns > moment_ns)


def one_line_error(process: subprocess.Popen, seconds: float = 60) -> str:
    """The process's exit, checked: status 1, no traceback, its last line
    one `error:` line; that line."""
    out, err = process.communicate(timeout=seconds)
    assert process.returncode == 1, (out, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert len(lines) <= 3, f"a few lines at most, not a traceback: {err}"
    return lines[-1]


def finish(env: dict[str, str], cwd: Path) -> str:
    done = publish("issue", ISSUE, "--yes", env=env, cwd=cwd)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    return out


@pytest.fixture
def child_env(newsletter: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_ROOT=str(newsletter), NEWSLETTER_TOKEN_SECRET=SECRET)
    return env


def add_subscribers(url: str, root: Path) -> list[str]:
    with Store.open(url, root) as store:
        return [store.add(f"reader{i:04d}@example.com").email for i in range(COUNT)]


# ---------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------


def _can_make_immutable(folder: Path) -> bool:
    probe = folder / "immutable-probe"
    probe.write_bytes(b"")
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True)
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        return done.returncode == 0
    except FileNotFoundError:
        return False
    finally:
        probe.unlink(missing_ok=True)


def test_an_sqlite_file_made_read_only_mid_send_stops_it_at_once(newsletter, child_env):
    """The file and its write-ahead log made immutable (which even root
    cannot write), as a filesystem turned read-only would."""
    if shutil.which("chattr") is None or not _can_make_immutable(newsletter):
        pytest.skip("needs chattr +i (root on ext4 or the like) to make a file read-only for root")
    url = "sqlite:///subscribers.db"
    addresses = add_subscribers(url, newsletter)
    env = {**child_env, "NEWSLETTER_DATABASE_RETRY": "2"}
    files = [newsletter / "subscribers.db", newsletter / "subscribers.db-wal"]
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), env=env, cwd=newsletter)
    try:
        wait_for(lambda: sent(url, newsletter) >= COUNT // 4 or sender.poll() is not None, 60,
                 "the send to get going")
        subprocess.run(["chattr", "+i", *map(str, files)], check=True)
        frozen = time.time_ns()
        line = one_line_error(sender)
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], capture_output=True)
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert line.startswith("error: the subscriber database could not be written (read-only: ")
    assert str(newsletter / "subscribers.db") in line
    assert "run publish issue again when it is fixed" in line
    assert written_after(newsletter, frozen) <= THREADS, "only what was in flight went on"

    out = finish(child_env, newsletter)
    assert "were in flight" not in out
    assert received(newsletter) == Counter(addresses), "nobody twice, nobody missed"
    assert statuses(url, newsletter) == Counter({"sent": COUNT})
    assert not list((newsletter / "recovery").glob("*.json")), "the kept results were applied"


class Lock:
    """Another process's write lock on the SQLite file, held until released."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")
        self.taken = time.time_ns()

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_lock_held_longer_than_the_retry_bound_stops_the_send_cleanly(newsletter, child_env):
    url = "sqlite:///subscribers.db"
    addresses = add_subscribers(url, newsletter)
    env = {**child_env, "NEWSLETTER_DATABASE_RETRY": "2"}
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), env=env, cwd=newsletter)
    lock = None
    try:
        wait_for(lambda: sent(url, newsletter) >= COUNT // 4 or sender.poll() is not None, 60,
                 "the send to get going")
        lock = Lock(newsletter / "subscribers.db")
        line = one_line_error(sender)
    finally:
        if lock is not None:
            lock.release()
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert line.startswith(
        "error: the subscriber database could not be written (locked by another process: "
    )
    assert "results are kept in recovery/" in line or "every result is recorded" in line
    assert written_after(newsletter, lock.taken) <= THREADS

    finish(child_env, newsletter)
    assert received(newsletter) == Counter(addresses), "nobody twice, nobody missed"
    assert statuses(url, newsletter) == Counter({"sent": COUNT})


def test_a_lock_that_passes_within_the_retry_bound_only_pauses_the_send(newsletter, child_env):
    url = "sqlite:///subscribers.db"
    addresses = add_subscribers(url, newsletter)
    env = {**child_env, "NEWSLETTER_DATABASE_RETRY": "30"}
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), env=env, cwd=newsletter)
    try:
        wait_for(lambda: sent(url, newsletter) >= COUNT // 4 or sender.poll() is not None, 60,
                 "the send to get going")
        lock = Lock(newsletter / "subscribers.db")
        released = threading.Timer(3.0, lock.release)  # the fault: a 3-second lock
        released.start()
        out, err = sender.communicate(timeout=120)
        released.join()
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == 0, (out, err)
    assert "Traceback" not in err
    assert received(newsletter) == Counter(addresses)
    assert statuses(url, newsletter) == Counter({"sent": COUNT})
    during = sum(
        1 for path in outbox(newsletter)
        if lock.taken < path.stat().st_mtime_ns < lock.taken + 2_900_000_000
    )
    assert during <= THREADS, "nothing but what was in flight went out while it was locked"


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["stop", "crash"])
def test_postgres_stopped_mid_send_and_started_again_resumes_in_the_same_run(
    own_postgres, newsletter, child_env, how
):
    url = own_postgres.url
    addresses = add_subscribers(url, newsletter)
    env = {**child_env, "NEWSLETTER_DATABASE_URL": url, "NEWSLETTER_DATABASE_RETRY": "40"}
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), env=env, cwd=newsletter)
    try:
        wait_for(lambda: sent(url, newsletter) >= COUNT // 4 or sender.poll() is not None, 60,
                 "the send to get going")
        getattr(own_postgres, how)()
        down = time.time_ns()
        time.sleep(3)  # the outage itself
        up = time.time_ns()
        own_postgres.start()
        out, err = sender.communicate(timeout=120)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == 0, (out, err)
    assert "Traceback" not in err
    assert received(newsletter) == Counter(addresses), "nobody twice, nobody missed"
    assert statuses(url, newsletter) == Counter({"sent": COUNT})
    during = sum(
        1 for path in outbox(newsletter) if down < path.stat().st_mtime_ns < up
    )
    assert during <= THREADS, "nothing but what was in flight went out while it was down"


@pytest.mark.postgres
def test_postgres_stopped_for_good_ends_the_send_in_one_line_and_resumes_later(
    own_postgres, newsletter, child_env
):
    url = own_postgres.url
    addresses = add_subscribers(url, newsletter)
    env = {**child_env, "NEWSLETTER_DATABASE_URL": url, "NEWSLETTER_DATABASE_RETRY": "2"}
    sender = publish("issue", ISSUE, "--yes", "--rate", str(RATE), env=env, cwd=newsletter)
    try:
        wait_for(lambda: sent(url, newsletter) >= COUNT // 4 or sender.poll() is not None, 60,
                 "the send to get going")
        own_postgres.stop()
        down = time.time_ns()
        line = one_line_error(sender)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert line.startswith("error: the subscriber database could not be written (PostgreSQL ")
    assert "run publish issue again when it is fixed" in line
    assert written_after(newsletter, down) <= THREADS, "nothing sent after the failure"

    own_postgres.start()
    out = finish(env, newsletter)
    assert "were in flight" not in out
    assert received(newsletter) == Counter(addresses), "no duplicates on the resume"
    assert statuses(url, newsletter) == Counter({"sent": COUNT})


# ---------------------------------------------------------------------------
# The pieces: naming the cause, retrying a unit of work
# ---------------------------------------------------------------------------


def _sqlite_error(text: str):
    from sqlalchemy.exc import OperationalError

    return OperationalError("UPDATE send_recipients ...", {}, sqlite3.OperationalError(text))


def test_database_failures_are_named_in_a_few_words_with_the_file(tmp_path):
    from subscribers.db import failure_cause

    engine = connect("sqlite:///subscribers.db", tmp_path)
    path = tmp_path / "subscribers.db"
    try:
        assert failure_cause(engine, _sqlite_error("database or disk is full")) == (
            f"disk full: {path}"
        )
        assert failure_cause(engine, _sqlite_error("attempt to write a readonly database")) == (
            f"read-only: {path}"
        )
        assert failure_cause(engine, _sqlite_error("database is locked")) == (
            f"locked by another process: {path}"
        )
    finally:
        engine.dispose()


def test_a_unit_of_work_is_tried_again_while_it_fails_in_a_way_that_passes(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from subscribers.db import retrying
    from subscribers.errors import DatabaseUnavailable

    engine = connect("sqlite:///subscribers.db", tmp_path)
    attempts = []

    def locked_twice() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise _sqlite_error("database is locked")
        return "written"

    def always_locked() -> str:
        raise _sqlite_error("database is locked")

    def a_bug() -> str:
        attempts.append(0.0)
        raise IntegrityError("INSERT ...", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    try:
        assert retrying(engine, locked_twice, seconds=10) == "written"
        assert len(attempts) == 3
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=r"could not be written \(locked by another"):
            retrying(engine, always_locked, seconds=0.5)
        assert 0.4 < time.monotonic() - started < 5, "bounded"
        attempts.clear()
        with pytest.raises(IntegrityError):
            retrying(engine, a_bug, seconds=10)
        assert len(attempts) == 1, "a bug is not tried again"
    finally:
        engine.dispose()
