"""Migrating the subscriber database to the schema this version of publish knows.

    ensure_migrated(engine)   nothing, when the database is at the head
                              revision (two queries, and Alembic not even
                              imported); else, under a lock only one process
                              holds, Alembic's upgrade to head
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
import re
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


_REVISION = re.compile(r'^revision = "(\w+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision = (?:None|"(\w+)")$', re.MULTILINE)


@cache
def _revisions() -> dict[str, str | None]:
    """Each revision in the migrations folder, with the one it revises, read
    from the files' own ``revision = "…"`` lines: knowing the head costs no
    Alembic import (about a third of a command's start-up) when the
    database is at it already, as it is on all but a first start."""
    found: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            raise StoreError(f"{path}: no revision = \"…\" and down_revision = … lines")
        found[revision[1]] = down[1]
    return found


def head_revision() -> str:
    """The newest revision: the one no other revises (the history is one line)."""
    revisions = _revisions()
    heads = set(revisions) - set(revisions.values())
    if len(heads) != 1:
        raise StoreError(f"{MIGRATIONS}: {len(heads)} head revisions, not one")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database (as
    Alembic keeps it, in ``alembic_version``)."""
    from sqlalchemy import inspect

    with _opened(engine) as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    if len(versions) > 1:
        raise StoreError(
            f"database {describe(engine)} is at {len(versions)} revisions at once; "
            "it was not migrated by publish"
        )
    return str(versions[0][0]) if versions else None


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
    if current is not None and current not in _revisions():
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
