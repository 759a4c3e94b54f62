"""Rate limits kept in the database, so that every web process and every
confirmation mailer shares them: the rate_limits table and its SQL.

    Bucket(kind, value, limit)   what one hit counts against: signups from a
                                 client network, confirmations to a mailbox
                                 or a domain
    network(ip)                  a client's bucket value: an IPv4 address, or
                                 the /64 an IPv6 address is in
    take(conn, buckets, now)     count a hit in every bucket, or in none
    give_back(conn, taken)       uncount the hits of a take

Each bucket counts its hits in fixed windows as long as its limit's, one
row per key and window, and judges a new hit by the sliding estimate
``hits of the previous window × the share of it still inside the sliding
window + hits of this one``, as Cloudflare's limiter does: one row read and
one upserted per bucket, whatever the traffic. A hit over the limit is not
counted. The upsert locks the row until the transaction ends, so two
processes counting the same key take turns (PostgreSQL) or write one at a
time anyway (SQLite). Rows expire two windows after their own began, and
each process deletes the expired ones at most once a minute.

Keys are SHA-256 hashes of ``kind/window:value``: the table holds no
address, neither IP nor email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, select, update

from subscribers.models import Limit
from subscribers.schema import rate_limits

if TYPE_CHECKING:
    from sqlalchemy import Connection

PRUNE_EVERY = 60.0
"""Seconds between two deletions of expired rows by one process."""
UNKNOWN = "unknown"
"""The network of a request whose client address is missing or is no address."""

_PREVIOUS = select(rate_limits.c.hits).where(
    rate_limits.c.key == bindparam("b_key"),
    rate_limits.c.window_start == bindparam("b_window"),
)
_GIVE_BACK = (
    update(rate_limits)
    .where(rate_limits.c.key == bindparam("b_key"))
    .where(rate_limits.c.window_start == bindparam("b_window"))
    .where(rate_limits.c.hits > 0)
    .values(hits=rate_limits.c.hits - 1)
)
_upserts: dict[str, Any] = {}
_pruned_at = -PRUNE_EVERY
_prune_lock = threading.Lock()


@dataclass(frozen=True)
class Bucket:
    """What a hit counts against: ``kind`` (``ip``, ``mailbox``…) and its
    ``value``, at most ``limit.count`` hits in any ``limit.seconds``."""

    kind: str
    value: str
    limit: Limit

    @property
    def seconds(self) -> int:
        return max(1, int(self.limit.seconds))

    @property
    def key(self) -> str:
        text = f"{self.kind}/{self.seconds}:{self.value}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def window_end(self, now: dt.datetime) -> dt.datetime:
        """When the window ``now`` is in ends (and the next begins)."""
        start = int(now.timestamp()) // self.seconds * self.seconds
        return dt.datetime.fromtimestamp(start + self.seconds, dt.UTC)


@dataclass(frozen=True)
class Taken:
    """What :func:`take` did: the buckets over their limit (nothing was
    counted then), or the rows it counted a hit in."""

    denied: tuple[Bucket, ...]
    rows: tuple[tuple[str, int], ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.denied


def network(ip: str | None) -> str:
    """The network a client address counts in: an IPv4 address as it is
    (an IPv4-mapped IPv6 address too), an IPv6 address by its /64, which is
    what one subscriber line gets. :data:`UNKNOWN` for anything else."""
    if not ip:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def take(conn: Connection, buckets: Sequence[Bucket], now: dt.datetime) -> Taken:
    """Count one hit in each of ``buckets`` if none is over its limit, else
    in none; in the caller's transaction."""
    _maybe_prune(conn, now)
    stamp = now.timestamp()
    counted: list[tuple[str, int]] = []
    denied: list[Bucket] = []
    upsert = _upsert(conn)
    # Always in key order: two takes of the same keys lock them in one order.
    for bucket in sorted(buckets, key=lambda b: b.key):
        window = int(stamp) // bucket.seconds * bucket.seconds
        expires = dt.datetime.fromtimestamp(window + 2 * bucket.seconds, dt.UTC)
        hits = conn.execute(
            upsert, {"b_key": bucket.key, "b_window": window, "b_expires": expires}
        ).scalar_one()
        counted.append((bucket.key, window))
        previous = conn.execute(
            _PREVIOUS, {"b_key": bucket.key, "b_window": window - bucket.seconds}
        ).scalar()
        inside = 1 - (stamp - window) / bucket.seconds
        if (previous or 0) * inside + hits > bucket.limit.count:
            denied.append(bucket)
    if denied:
        give_back(conn, counted)
        return Taken(tuple(denied))
    return Taken((), tuple(counted))


def give_back(conn: Connection, rows: Sequence[tuple[str, int]]) -> None:
    """Uncount one hit in each row (as :attr:`Taken.rows` names them)."""
    if rows:
        conn.execute(_GIVE_BACK, [{"b_key": key, "b_window": start} for key, start in rows])


def prune(conn: Connection, now: dt.datetime) -> int:
    """Delete the rows whose window and the one after it are over."""
    result = conn.execute(delete(rate_limits).where(rate_limits.c.expires_at < now))
    return int(result.rowcount or 0)


def _maybe_prune(conn: Connection, now: dt.datetime) -> None:
    global _pruned_at
    with _prune_lock:
        if time.monotonic() - _pruned_at < PRUNE_EVERY:
            return
        _pruned_at = time.monotonic()
    prune(conn, now)


def _upsert(conn: Connection) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE hits + 1 RETURNING hits, for this
    database (SQLite 3.35 and PostgreSQL both have it), built once."""
    dialect = conn.dialect.name
    statement = _upserts.get(dialect)
    if statement is None:
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(rate_limits)
            .values(
                key=bindparam("b_key"),
                window_start=bindparam("b_window"),
                hits=1,
                expires_at=bindparam("b_expires"),
            )
            .on_conflict_do_update(
                index_elements=[rate_limits.c.key, rate_limits.c.window_start],
                set_={"hits": rate_limits.c.hits + 1},
            )
            .returning(rate_limits.c.hits)
        )
        _upserts[dialect] = statement
    return statement
