"""Opening the database: SQLite under the newsletter's root by default,
PostgreSQL (psycopg 3) by URL, migrated to the current schema on first use.

    connect(url, root)    an Engine, migrated; the one way in
    upgrade(url, root)    migrate now and say to which revision
    writing(engine)       a transaction that will write
    retrying(engine, work, seconds=...)
                          a unit of work tried again, with backoff, while the
                          database fails in a way that passes (locked, server
                          restarting, disk full for a moment); then
                          DatabaseUnavailable, one line naming the cause
    unavailable(engine)   database errors as DatabaseUnavailable, for commands

SQLite connections get WAL (readers never block the writer), foreign keys
(so erasing a subscriber cascades to their history), a busy timeout, and
transactions that begin explicitly: ``writing()`` takes the write lock up
front (``BEGIN IMMEDIATE``), so two writers queue instead of failing halfway
with "database is locked". Callers never need to know which database it is.

Migrations live in ``subscribers/migrations`` (Alembic). To change the
schema, edit ``schema.py`` and add a revision beside the others; generate a
draft with ``alembic -c <a config naming script_location> revision
--autogenerate`` and check it by hand.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from subscribers.errors import DatabaseUnavailable, StoreError, first_line

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x7075626C  # "publ": the advisory lock PostgreSQL migrations take
_BUSY_TIMEOUT_MS = 30_000
_CHECKPOINT_WAIT_MS = 2_000
T = TypeVar("T")
_write_locks: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_write_locks_guard = threading.Lock()


def connect(
    url: str, root: Path, *, migrate: bool = True, busy_timeout: float | None = None
) -> Engine:
    """An Engine for ``url``; relative SQLite paths are taken from ``root``.

    Migrations run first unless the database is already at the newest
    revision (one query). Raises :class:`StoreError` with a one-line message
    when the database cannot be opened. ``busy_timeout``: the seconds an
    SQLite statement waits for another process's lock (default 30).
    """
    from functools import partial

    from sqlalchemy import create_engine, event

    target = database_url(url, root)
    if target.get_backend_name() == "sqlite":
        _create_owner_only(target.database)
        engine = create_engine(target)
        busy_ms = _BUSY_TIMEOUT_MS if busy_timeout is None else int(busy_timeout * 1000)
        event.listen(engine, "connect", partial(_sqlite_on_connect, busy_ms=busy_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        engine = create_engine(target, pool_pre_ping=True)
    if migrate:
        try:
            _ensure_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
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


def upgrade(url: str, root: Path) -> str:
    """Bring the database to the newest schema; return that revision."""
    engine = connect(url, root, migrate=False)
    try:
        _ensure_migrated(engine)
        return current_revision(engine) or ""
    finally:
        engine.dispose()


def database_url(url: str, root: Path) -> URL:
    """The URL to open: SQLite paths made absolute, PostgreSQL given psycopg 3."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = url.strip()
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise StoreError(f"database.url: {redact_url(text)!r} is not a database URL") from None
    except ValueError:  # the only one make_url raises: int() of the port
        raise StoreError(
            f"database.url: {redact_url(text)!r} has a port that is not a number"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if not path.is_absolute():
                path = root / path
            if not path.parent.is_dir():
                raise StoreError(f"database.url: the folder {path.parent} does not exist")
            parsed = parsed.set(database=str(path))
        return parsed
    if backend in ("postgresql", "postgres"):
        if driver not in ("psycopg", ""):
            raise StoreError(
                f"database.url: use postgresql+psycopg://... (psycopg 3), not {parsed.drivername}"
            )
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"database.url: {parsed.drivername!r} is not supported; use sqlite:/// or postgresql://"
    )


def describe(engine: Engine) -> str:
    """The engine's URL with any password hidden, for messages."""
    return redact_url(engine.url)


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def redact_url(url: str | URL) -> str:
    """A database URL for messages and logs, its password shown as ``***``:
    ``postgresql+psycopg://user:***@host/db``. Takes text that is no valid
    URL too: whatever lies between the user's ``:`` and the last ``@`` is
    hidden, so a password with an ``@`` in it does not show either."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    credentials, at, rest = text.rpartition("@")
    scheme, slashes, userinfo = credentials.partition("://")
    if not slashes:
        scheme, userinfo = "", credentials
    user, colon, _password = userinfo.partition(":")
    if at and colon:
        text = f"{scheme}{slashes}{user}:***@{rest}"
    return _QUERY_PASSWORD.sub(r"\1***", text)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write: committed on success, rolled back
    on error. On SQLite it holds the write lock from its first statement.

    SQLite has one writer at a time. Threads of one process queue for it on
    a lock here, handed over at once; only other processes wait in SQLite's
    busy handler, which polls with sleeps of up to 100 ms.
    """
    with _write_lock(engine) if is_sqlite(engine) else nullcontext(), engine.connect() as conn:
        conn.execution_options(sqlite_write=True)
        with conn.begin():
            yield conn


# ---------------------------------------------------------------------------
# Faults: what passes, what to tell the operator
# ---------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """True for a database error that may pass if the same unit of work is
    tried again: a lock, a dropped or refused connection, a server shutting
    down or restarting, an I/O error, a full disk. Not for errors in the
    statements themselves (integrity, syntax), which are bugs."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def failure_cause(engine: Engine, exc: BaseException) -> str:
    """A few words naming why the database failed, with its file or server:
    ``disk full: /srv/newsletter/subscribers.db``."""
    orig = getattr(exc, "orig", None) or exc
    reason = first_line(exc, 200)
    if engine.url.password:
        reason = reason.replace(str(engine.url.password), "***")
    if not is_sqlite(engine):
        where = f"PostgreSQL {engine.url.host or 'localhost'}:{engine.url.port or 5432}"
        lowered = reason.lower()
        if "refused" in lowered or "no such file" in lowered:
            return f"{where} refuses connections, is it running? {describe(engine)}"
        if "terminating connection" in lowered or "shutting down" in lowered:
            return f"{where} is shutting down: {describe(engine)}"
        if "closed the connection" in lowered or "connection lost" in lowered:
            return f"{where} dropped the connection: {describe(engine)}"
        return f"{where}: {reason}: {describe(engine)}"
    path = engine.url.database or ""
    name = str(getattr(orig, "sqlite_errorname", "") or "")
    lowered = reason.lower()
    if "FULL" in name or "disk is full" in lowered:
        return f"disk full: {path}"
    if "READONLY" in name or "readonly" in lowered or not _writable(path):
        return f"read-only: {path}"
    if "BUSY" in name or "LOCKED" in name or "locked" in lowered:
        return f"locked by another process: {path}"
    if "CANTOPEN" in name or "unable to open" in lowered:
        return f"cannot be opened: {path}"
    return f"{reason}: {path}"


def _writable(path: str) -> bool:
    """False when the SQLite file (or its write-ahead log) cannot be opened
    for writing: read-only permissions, an immutable file, a read-only mount."""
    for name in (path, f"{path}-wal"):
        try:
            with open(name, "r+b"):
                pass
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


def retrying(
    engine: Engine,
    work: Callable[[], T],
    *,
    seconds: float,
    give_up: threading.Event | None = None,
    writing: bool = True,
    on_failure: Callable[[BaseException], None] | None = None,
) -> T:
    """``work()``, tried again with backoff while it fails with a transient
    error (:func:`is_transient`), for up to ``seconds`` from the first
    attempt; then :class:`DatabaseUnavailable`. ``work`` must be one unit
    of work (its own transaction), so that trying it again is safe; on
    PostgreSQL each attempt takes a connection that the pool has checked
    (``pool_pre_ping``), so a restarted server is reconnected to.
    ``give_up`` set: no more attempts. ``on_failure`` is told of each
    failure that will be tried again."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return work()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            left = started + seconds - time.monotonic()
            if left <= 0 or (give_up is not None and give_up.is_set()):
                raise DatabaseUnavailable(failure_cause(engine, exc), writing=writing) from None
            if on_failure is not None:
                on_failure(exc)
            if attempt == 1:
                log.warning(
                    "the subscriber database could not be %s (%s); trying again for up to %.0f s",
                    "written" if writing else "read",
                    failure_cause(engine, exc),
                    left,
                )
            if give_up is not None:
                give_up.wait(min(left, retry_pause(attempt)))
            else:
                time.sleep(min(left, retry_pause(attempt)))


def retry_pause(attempt: int) -> float:
    """Seconds before retry ``attempt`` (from 1): 50 ms doubling up to 2 s, with jitter."""
    import random

    return float(min(2.0, 0.05 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))  # noqa: S311


@contextmanager
def unavailable(engine: Engine, *, writing: bool = True) -> Iterator[None]:
    """Database errors that may pass (:func:`is_transient`) raised as
    :class:`DatabaseUnavailable`, one line naming the cause, instead of a
    driver's traceback."""
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise DatabaseUnavailable(failure_cause(engine, exc), writing=writing) from None


def _write_lock(engine: Engine) -> threading.RLock:
    with _write_locks_guard:
        lock = _write_locks.get(engine)
        if lock is None:
            # Re-entrant: a nested write fails in SQLite's busy handler
            # (loudly, after the timeout) instead of hanging here for ever.
            lock = _write_locks[engine] = threading.RLock()
        return lock


# ---------------------------------------------------------------------------
# SQLite connection set-up
# ---------------------------------------------------------------------------


def _sqlite_on_connect(
    dbapi_connection: Any, _record: Any, *, busy_ms: int = _BUSY_TIMEOUT_MS
) -> None:
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
        cursor.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
        try:
            busy, _frames, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    finally:
        raw.close()
    return not busy


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once. The switch needs the file to itself and,
    unlike other statements, does not wait in the busy handler: when several
    processes open a new database at once, wait here instead."""
    import sqlite3

    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("sqlite_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# ---------------------------------------------------------------------------
# Migrations
# ---------------------------------------------------------------------------


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with _opened(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _opened(engine: Engine) -> Iterator[Connection]:
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            yield conn
    except DBAPIError as exc:
        reason = first_line(exc)
        if engine.url.password:  # in case the driver quotes its connection string
            reason = reason.replace(str(engine.url.password), "***")
        raise StoreError(f"database {describe(engine)}: {reason}") from None


def _ensure_migrated(engine: Engine) -> None:
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    if current is not None and current not in {rev.revision for rev in _script().walk_revisions()}:
        raise StoreError(
            f"database {describe(engine)} is at revision {current}, which this version "
            "of publish does not know; upgrade publish"
        )
    with _migration_lock(engine) as conn:
        from alembic import command

        log.info("migrating %s from %s to %s", describe(engine), current or "empty", head)
        command.upgrade(_config(conn), "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time holds,
    so that two processes starting on a fresh database don't both create it.
    Alembic reads the revision again inside it and skips what is done."""
    with _opened(engine) as conn:
        conn.execution_options(sqlite_write=True)  # SQLite: BEGIN IMMEDIATE
        with conn.begin():
            if not is_sqlite(engine):
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
            yield conn
