"""Rate limits kept in the database, so that every web process and every
confirmation mailer shares them: the rate_limits table and its SQL.

    Bucket(kind, value, limit)   what one hit counts against: signups from a
                                 client network, confirmations to a mailbox
                                 or a domain
    network(ip)                  a client's bucket value: an IPv4 address, or
                                 the /64 an IPv6 address is in
    take(conn, buckets, now)     count a hit in every bucket, or in none
    take_each(conn, sets, now)   take() for each set of buckets in turn, in
                                 three statements however many there are
                                 (a confirmation mailer's batch)
    POSTGRES_HIT, hit_params,    take() of one bucket as SQL for a statement
    judge                        of the caller's (a form signup's, run on its
                                 own), judged in SQL; what its result says
    give_back(conn, taken)       uncount the hits of a take

Each bucket counts its hits in fixed windows as long as its limit's, one
row per key and window, and judges a new hit by the sliding estimate
``hits of the previous window × the share of it still inside the sliding
window + hits of this one``, as Cloudflare's limiter does: one statement per
bucket, whatever the traffic, that upserts this window's row and reads the
previous one's. A hit over the limit is not counted. The upsert locks the
row until the transaction ends, so two processes counting the same key take
turns (PostgreSQL) or write one at a time anyway (SQLite); ``take_each``
locks all its rows first, the same way, then counts in Python. Rows expire
two windows after their own began, and each process deletes the expired
ones at most once a minute.

Keys are SHA-256 hashes of ``kind/window:value``: the table holds no
address, neither IP nor email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import any_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from subscribers.models import Limit
from subscribers.schema import rate_limits

if TYPE_CHECKING:
    from sqlalchemy import Connection

PRUNE_EVERY = 60.0
"""Seconds between two deletions of expired rows by one process."""
UNKNOWN = "unknown"
"""The network of a request whose client address is missing or is no address."""

_EARLIER = rate_limits.alias("earlier")
_PREVIOUS = (
    select(_EARLIER.c.hits)
    .where(_EARLIER.c.key == bindparam("b_key"))
    .where(_EARLIER.c.window_start == bindparam("b_previous"))
    .scalar_subquery()
)
_COUNTS = select(rate_limits.c.key, rate_limits.c.window_start, rate_limits.c.hits).where(
    rate_limits.c.key.in_(bindparam("b_keys", expanding=True))
)
_POSTGRES_COUNTS = select(rate_limits.c.key, rate_limits.c.window_start, rate_limits.c.hits).where(
    rate_limits.c.key == any_(bindparam("b_keys", type_=ARRAY(rate_limits.c.key.type)))
)
"""The rows of a batch's buckets; on PostgreSQL their keys are one array,
so that the statement is the same (and planned once) for any batch."""
_POSTGRES_ADD_HITS = (
    "INSERT INTO rate_limits (key, window_start, hits, expires_at) SELECT * FROM "
    "unnest(%s::varchar[], %s::bigint[], %s::integer[], %s::timestamptz[]) "
    "ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + excluded.hits"
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

    @cached_property
    def seconds(self) -> int:
        return max(1, int(self.limit.seconds))

    @cached_property
    def key(self) -> str:
        """What the row is kept under; worked out once (a batch of
        confirmations asks it of each bucket many times)."""
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
        window = _window(bucket, stamp)
        params = {
            "b_key": bucket.key,
            "b_window": window,
            "b_expires": _expires(bucket, window),
            "b_previous": window - bucket.seconds,
        }
        hits, previous = conn.execute(upsert, params).one()
        counted.append((bucket.key, window))
        if _over(bucket, stamp, previous or 0, hits):
            denied.append(bucket)
    if denied:
        give_back(conn, counted)
        return Taken(tuple(denied))
    return Taken((), tuple(counted))


_EARLIER_SQL = (
    "COALESCE((SELECT earlier.hits FROM rate_limits AS earlier "
    "WHERE earlier.key = CAST(%(b_key)s AS VARCHAR) "
    "AND earlier.window_start = CAST(%(b_previous)s AS BIGINT)), 0) "
    "* CAST(%(b_inside)s AS DOUBLE PRECISION)"
)
POSTGRES_HIT = (
    "INSERT INTO rate_limits (key, window_start, hits, expires_at) "
    "SELECT CAST(%(b_key)s AS VARCHAR), CAST(%(b_window)s AS BIGINT), 1, "
    "CAST(%(b_expires)s AS TIMESTAMP WITH TIME ZONE) "
    f"WHERE 1 + {_EARLIER_SQL} <= CAST(%(b_count)s AS INTEGER) "
    "ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1 "
    f"WHERE rate_limits.hits + 1 + {_EARLIER_SQL} <= CAST(%(b_count)s AS INTEGER) "
    "RETURNING hits"
)
"""The hit of :func:`take` for one bucket as PostgreSQL SQL, in psycopg's
placeholders, for a statement of the caller's to run as a CTE: the limit is
judged in the statement, on the row it has locked, and a hit over it is
neither counted nor returned. One statement is its own transaction, so the
row every signup from a network updates is locked only while it runs."""


def hit_params(conn: Connection, bucket: Bucket, now: dt.datetime) -> dict[str, Any]:
    """The parameters of :data:`POSTGRES_HIT` for ``bucket`` at ``now``;
    expired rows are pruned now and then, as :func:`take` does."""
    _maybe_prune(conn, now)
    stamp = now.timestamp()
    window = _window(bucket, stamp)
    return {
        "b_key": bucket.key,
        "b_window": window,
        "b_expires": _expires(bucket, window),
        "b_previous": window - bucket.seconds,
        "b_inside": 1 - (stamp - window) / bucket.seconds,
        "b_count": bucket.limit.count,
    }


def judge(bucket: Bucket, now: dt.datetime, hits: int | None) -> Taken:
    """What :func:`take` says of ``bucket`` when :data:`POSTGRES_HIT`
    returned ``hits`` (None: nothing, the hit was over the limit)."""
    if hits is None:
        return Taken((bucket,))
    return Taken((), ((bucket.key, _window(bucket, now.timestamp())),))


def take_each(
    conn: Connection, bucket_sets: Sequence[Sequence[Bucket]], now: dt.datetime
) -> list[Taken]:
    """What :func:`take` would say for each set of ``bucket_sets``, one set
    after the other, in the caller's transaction: the rows of every bucket
    are locked first (in key order, created with no hits where missing),
    read in one statement, counted here, and written back in one."""
    _maybe_prune(conn, now)
    stamp = now.timestamp()
    distinct = {bucket.key: bucket for buckets in bucket_sets for bucket in buckets}
    if not distinct:
        return [Taken(()) for _ in bucket_sets]
    windows = {key: _window(bucket, stamp) for key, bucket in distinct.items()}
    expires = {key: _expires(bucket, windows[key]) for key, bucket in distinct.items()}
    _add_hits(conn, [(key, windows[key], expires[key], 0) for key in sorted(distinct)])
    hits: Counter[str] = Counter()
    previous: Counter[str] = Counter()
    counts = _POSTGRES_COUNTS if conn.dialect.name == "postgresql" else _COUNTS
    for key, start, count in conn.execute(counts, {"b_keys": sorted(distinct)}):
        if start == windows[key]:
            hits[key] = count
        elif start == windows[key] - distinct[key].seconds:
            previous[key] = count
    added: Counter[str] = Counter()
    results: list[Taken] = []
    for buckets in bucket_sets:
        ordered = sorted(buckets, key=lambda b: b.key)
        these = Counter(bucket.key for bucket in ordered)
        denied = tuple(
            bucket
            for bucket in ordered
            if _over(
                bucket,
                stamp,
                previous[bucket.key],
                hits[bucket.key] + added[bucket.key] + these[bucket.key],
            )
        )
        if denied:
            results.append(Taken(denied))
            continue
        added.update(these)
        results.append(Taken((), tuple((bucket.key, windows[bucket.key]) for bucket in ordered)))
    _add_hits(conn, [(key, windows[key], expires[key], n) for key, n in sorted(added.items())])
    return results


def _add_hits(conn: Connection, rows: Sequence[tuple[str, int, dt.datetime, int]]) -> None:
    """Add ``(key, window, expires, hits)`` to each row, made where missing,
    in the order given (the order of its locks): on PostgreSQL one statement
    of four arrays, the same text (and plan) for any batch; on SQLite an
    executemany. The SQL is written here, as the driver takes it."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        keys, windows, expiries, hits = (list(column) for column in zip(*rows, strict=True))
        conn.exec_driver_sql(_POSTGRES_ADD_HITS, (keys, windows, hits, expiries))
        return
    write = rate_limits.c.expires_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert write is not None  # SQLite keeps timestamps as text
    conn.exec_driver_sql(
        "INSERT INTO rate_limits (key, window_start, hits, expires_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + excluded.hits",
        [(key, window, hits, write(expires)) for key, window, expires, hits in rows],
    )


def _window(bucket: Bucket, stamp: float) -> int:
    """The start of the window ``stamp`` is in, in seconds since the epoch."""
    return int(stamp) // bucket.seconds * bucket.seconds


def _expires(bucket: Bucket, window: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(window + 2 * bucket.seconds, dt.UTC)


def _over(bucket: Bucket, stamp: float, previous: int, hits: int) -> bool:
    """Whether ``hits`` in this window (this one counted) and ``previous`` in
    the one before are over the bucket's limit, in the sliding estimate."""
    inside = 1 - (stamp - _window(bucket, stamp)) / bucket.seconds
    return previous * inside + hits > bucket.limit.count


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
    """INSERT ... ON CONFLICT DO UPDATE hits + 1 RETURNING hits and the
    previous window's hits, for this database (SQLite 3.35 and PostgreSQL
    both have it), built once."""
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
            .returning(rate_limits.c.hits, _PREVIOUS)
        )
        _upserts[dialect] = statement
    return statement
