"""When the database fails: what may pass, trying again, and the cause in one line.

    is_transient(exc)       a lock, a dropped or refused connection, a server
                            restarting, an I/O error, a full disk: may pass
    retrying(engine, work)  work() tried again, with backoff, while it fails
                            in a way that may pass, for up to ``seconds``;
                            then DatabaseUnavailable
    unavailable(engine)     such errors raised as DatabaseUnavailable at once
    failure_cause(engine, exc)
                            ``disk full: /srv/newsletter/subscribers.db``,
                            ``PostgreSQL db:5432 refuses connections, ...``

Errors in the statements themselves (integrity, syntax) are bugs and are
raised as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from subscribers.db.sqlite import is_sqlite
from subscribers.db.url import describe
from subscribers.errors import DatabaseUnavailable, first_line

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")


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


__all__ = ["failure_cause", "is_transient", "retry_pause", "retrying", "unavailable"]
