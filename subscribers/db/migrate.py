"""Migrating the subscriber database to the schema this version of publish knows.

    ensure_migrated(engine)   nothing, when the database is at the head
                              revision (one query); else, under a lock only
                              one process holds, Alembic's upgrade to head
    head_revision()           the newest revision in subscribers/migrations
    current_revision(engine)  the one the database is at (None: empty)

A database at a revision this version does not know (a newer publish wrote
it) is a :class:`~subscribers.errors.StoreError`: upgrade publish.

Migrations live in ``subscribers/migrations`` (Alembic). To change the
schema, edit ``schema.py`` and add a revision beside the others; generate a
draft with ``alembic -c <a config naming script_location> revision
--autogenerate`` and check it by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from subscribers.db.sqlite import is_sqlite
from subscribers.db.url import describe
from subscribers.errors import StoreError, first_line

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_ID = 0x7075626C  # "publ": the advisory lock PostgreSQL migrations take


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


def ensure_migrated(engine: Engine) -> None:
    """Bring the database to the head revision, unless it is there already."""
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


__all__ = ["MIGRATIONS", "current_revision", "ensure_migrated", "head_revision"]
