"""Database URLs: the one the settings name, made ready to open, and shown without secrets.

    database_url("sqlite:///subscribers.db", root)  → sqlite:////srv/news/subscribers.db
    database_url("postgresql://u:pw@host/db", root) → postgresql+psycopg://u:pw@host/db
    redact_url(...) / describe(engine)              → postgresql+psycopg://u:***@host/db

A URL that cannot be used is a :class:`~subscribers.errors.StoreError`
naming ``database.url``, its password hidden too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from subscribers.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


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


__all__ = ["database_url", "describe", "redact_url"]
