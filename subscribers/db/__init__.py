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
    forget_deleted(engine)
                          deleted rows made unreadable in the files

Its parts, each with one job:

    url.py       the URL from the settings, made ready to open; shown redacted
    sqlite.py    SQLite's file, connection set-up (WAL, foreign keys, busy
                 timeout, BEGIN IMMEDIATE for writers) and write lock
    migrate.py   Alembic: the head revision, the database's, the upgrade
    outages.py   what failures may pass, retrying them, naming the cause

SQLite connections get WAL (readers never block the writer), foreign keys
(so erasing a subscriber cascades to their history), a busy timeout, and
transactions that begin explicitly: ``writing()`` takes the write lock up
front (``BEGIN IMMEDIATE``), so two writers queue instead of failing halfway
with "database is locked". Callers never need to know which database it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from subscribers.db.migrate import MIGRATIONS, current_revision, ensure_migrated, head_revision
from subscribers.db.outages import (
    failure_cause,
    is_transient,
    retry_pause,
    retrying,
    unavailable,
)
from subscribers.db.sqlite import forget_deleted, is_sqlite, open_engine, write_lock
from subscribers.db.url import database_url, describe, redact_url

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine


def connect(
    url: str, root: Path, *, migrate: bool = True, busy_timeout: float | None = None
) -> Engine:
    """An Engine for ``url``; relative SQLite paths are taken from ``root``.

    Migrations run first unless the database is already at the newest
    revision (one query). Raises :class:`StoreError` with a one-line message
    when the database cannot be opened. ``busy_timeout``: the seconds an
    SQLite statement waits for another process's lock (default 30).
    """
    from sqlalchemy import create_engine

    target = database_url(url, root)
    if target.get_backend_name() == "sqlite":
        engine = open_engine(target, busy_timeout=busy_timeout)
    else:
        engine = create_engine(target, pool_pre_ping=True)
    if migrate:
        try:
            ensure_migrated(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def upgrade(url: str, root: Path) -> str:
    """Bring the database to the newest schema; return that revision."""
    engine = connect(url, root, migrate=False)
    try:
        ensure_migrated(engine)
        return current_revision(engine) or ""
    finally:
        engine.dispose()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write: committed on success, rolled back
    on error. On SQLite it holds the write lock from its first statement.

    SQLite has one writer at a time. Threads of one process queue for it on
    a lock here, handed over at once; only other processes wait in SQLite's
    busy handler, which polls with sleeps of up to 100 ms.
    """
    with write_lock(engine) if is_sqlite(engine) else nullcontext(), engine.connect() as conn:
        conn.execution_options(sqlite_write=True)
        with conn.begin():
            yield conn


__all__ = [
    "MIGRATIONS",
    "connect",
    "current_revision",
    "database_url",
    "describe",
    "failure_cause",
    "forget_deleted",
    "head_revision",
    "is_sqlite",
    "is_transient",
    "redact_url",
    "retry_pause",
    "retrying",
    "unavailable",
    "upgrade",
    "writing",
]
