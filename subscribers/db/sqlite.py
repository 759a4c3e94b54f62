"""SQLite as the subscriber database: the file, its connections, its one writer.

    open_engine(url)   the file created readable by its owner only; every
                       connection set up on connect:
                         busy_timeout     wait for another process's lock
                         foreign_keys     erasing a subscriber cascades
                         secure_delete    deleted rows are overwritten
                         journal_mode WAL readers never block the writer
                       and every transaction begun explicitly: BEGIN
                       IMMEDIATE for one that will write (the write lock up
                       front), BEGIN for one that reads
    write_lock(engine) the lock threads of one process queue on to write
    forget_deleted     the write-ahead log emptied into the file, so that no
                       deleted row stays readable in ``-wal``

Two writers queue instead of failing halfway with "database is locked".
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import URL

BUSY_TIMEOUT_MS = 30_000
_CHECKPOINT_WAIT_MS = 2_000
_write_locks: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_write_locks_guard = threading.Lock()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def open_engine(target: URL, *, busy_timeout: float | None = None) -> Engine:
    """An Engine for the SQLite database at ``target``, its connections and
    transactions set up as above. ``busy_timeout``: the seconds a statement
    waits for another process's lock (default 30)."""
    from functools import partial

    from sqlalchemy import create_engine, event

    _create_owner_only(target.database)
    engine = create_engine(target)
    busy_ms = BUSY_TIMEOUT_MS if busy_timeout is None else int(busy_timeout * 1000)
    event.listen(engine, "connect", partial(_on_connect, busy_ms=busy_ms))
    event.listen(engine, "begin", partial(_on_begin, busy_ms=busy_ms))
    return engine


def _create_owner_only(database: str | None) -> None:
    """Create a new SQLite file readable by its owner only: it holds
    readers' addresses and consent. SQLite gives its WAL and shared-memory
    files the database's mode. An existing file keeps the mode it has."""
    import os

    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    except OSError:
        return  # SQLite itself will say why it cannot open the file


def write_lock(engine: Engine) -> threading.RLock:
    """The lock this process's threads take before they write to ``engine``:
    handed over at once, where SQLite's busy handler polls with sleeps of up
    to 100 ms (which only other processes then wait in)."""
    with _write_locks_guard:
        lock = _write_locks.get(engine)
        if lock is None:
            # Re-entrant: a nested write fails in SQLite's busy handler
            # (loudly, after the timeout) instead of hanging here for ever.
            lock = _write_locks[engine] = threading.RLock()
        return lock


def _on_connect(dbapi_connection: Any, _record: Any, *, busy_ms: int = BUSY_TIMEOUT_MS) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (see below) instead of
    # the driver's implicit, late BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {max(0, busy_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Deleted rows are overwritten with zeros, not left in free pages:
        # an erased reader's address must not stay readable in the file.
        cursor.execute("PRAGMA secure_delete = ON")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def forget_deleted(engine: Engine) -> bool:
    """Make deleted rows unreadable in the database's files, where the
    database keeps them: for SQLite, the write-ahead log is checkpointed
    into the database file (whose deleted cells ``secure_delete`` zeroed)
    and truncated, so no earlier page image stays in ``-wal``. True when
    that is done; False when another process holds a read open on an
    older snapshot (``publish serve``, say) and the log could not be
    emptied. PostgreSQL: True; its autovacuum removes dead row versions and
    reuses their space (``VACUUM FULL`` rewrites a table at once, under a
    lock that stops the service, which is for the operator to choose)."""
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()  # outside any transaction, which would hold a snapshot
    try:
        cursor = raw.cursor()
        # Readers finish in milliseconds; one that does not is a long-lived
        # process, and waiting the usual 30 seconds for it would not help.
        (usual,) = cursor.execute("PRAGMA busy_timeout").fetchone()
        cursor.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
        try:
            busy, _frames, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            # The connection goes back to the pool with the engine's own wait.
            cursor.execute(f"PRAGMA busy_timeout = {int(usual)}")
    finally:
        raw.close()
    return not busy


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once. The switch needs the file to itself and,
    unlike other statements, does not wait in the busy handler: when several
    processes open a new database at once, wait here instead."""
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _on_begin(conn: Connection, *, busy_ms: int = BUSY_TIMEOUT_MS) -> None:
    if conn.get_execution_options().get("sqlite_write", False):
        _begin_immediate(conn, busy_ms)
    else:
        conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Connection, busy_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting up to ``busy_ms`` for another connection's
    write lock by trying again every 0.2 to 2 ms. SQLite's own busy handler
    sleeps 1, 2, 5, 10 … 100 ms between tries, so a writer that came while
    another process (the confirmation mailer) held the lock for a
    millisecond would lose up to 100; this keeps two processes' short
    writes close together. Only BEGIN IMMEDIATE waits for the write lock:
    the statements after it hold it already, and keep the usual wait."""
    import sqlite3

    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + busy_ms / 1000
        pause = 0.0002
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    break  # SQLAlchemy's error, from the last try below
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        # The last try, through SQLAlchemy: its error, should it fail, is the
        # one every caller knows (sqlalchemy.exc.OperationalError).
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout = {max(0, busy_ms)}")


__all__ = ["BUSY_TIMEOUT_MS", "forget_deleted", "is_sqlite", "open_engine", "write_lock"]
