"""The rate limits in the database: windows, all-or-nothing takes, pruning,
one count however many processes take at once; and which client network a
request counts in."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from subscribers import limits
from subscribers.limits import Bucket, network
from subscribers.middleware import client_ip
from subscribers.models import Limit
from subscribers.schema import rate_limits
from subscribers.store import Store

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # a window starts here
MINUTE = Limit(3, 60)


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def take(store: Store, *buckets: Bucket, at: dt.datetime = NOW) -> limits.Taken:
    with store.transaction() as tx:
        return tx.take_limits(list(buckets), at)


def at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def test_a_bucket_takes_its_count_and_refuses_the_rest_without_counting_them(store):
    ip = Bucket("ip", "192.0.2.1", MINUTE)
    assert [take(store, ip, at=at(n)).allowed for n in range(5)] == [True] * 3 + [False] * 2
    with store.engine.connect() as conn:
        assert conn.execute(select(rate_limits.c.hits)).scalar_one() == 3
    assert take(store, Bucket("ip", "192.0.2.2", MINUTE), at=at(5)).allowed  # its own count


def test_the_window_slides(store):
    ip = Bucket("ip", "192.0.2.1", MINUTE)
    for n in range(3):
        assert take(store, ip, at=at(50 + n)).allowed
    # The next window has begun, but the last one's hits still weigh almost all.
    assert not take(store, ip, at=at(61)).allowed
    # Halfway through it, half of them: 1.5 + 1 fits in 3; just after, 1.45 + 2 does not.
    assert take(store, ip, at=at(90)).allowed
    assert not take(store, ip, at=at(91)).allowed
    assert take(store, ip, at=at(181)).allowed  # two windows later: all forgotten


def test_a_take_counts_in_every_bucket_or_in_none(store):
    mailbox = Bucket("mailbox", "victim@example.com", Limit(1, 3600))
    domain = Bucket("domain", "example.com", Limit(10, 60))
    assert take(store, mailbox, domain).allowed
    refused = take(store, domain, mailbox, at=at(1))
    assert refused.denied == (mailbox,)
    with store.engine.connect() as conn:
        assert sorted(conn.execute(select(rate_limits.c.hits)).scalars()) == [1, 1]
    # Giving back a take uncounts it.
    taken = take(store, domain, at=at(2))
    with store.transaction() as tx:
        tx.give_back_limits(taken)
    with store.engine.connect() as conn:
        assert sorted(conn.execute(select(rate_limits.c.hits)).scalars()) == [1, 1]


def test_the_table_keeps_no_address_and_forgets_expired_windows(store):
    take(store, Bucket("mailbox", "victim@example.com", Limit(3, 3600)))
    take(store, Bucket("ip", "192.0.2.1", MINUTE))
    with store.engine.connect() as conn:
        rows = conn.execute(select(rate_limits)).all()
    assert len(rows) == 2
    assert not any("victim" in row.key or "192.0.2" in row.key for row in rows)
    with store.transaction() as tx:
        assert limits.prune(tx.conn, at(119)) == 0
        assert limits.prune(tx.conn, at(121)) == 1  # the minute's row, two windows on
        assert limits.prune(tx.conn, at(7201)) == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rate_limits)).scalar_one() == 0


def test_a_batch_of_takes_says_what_takes_one_after_the_other_say(store):
    """take_each (a mailer's batch, in three statements) against take, set
    after set, on buckets of their own: the same answers, the same counts."""

    def sets(kind: str) -> list[list[Bucket]]:
        a, b, c = (Bucket(kind, f"{n}@example.com", Limit(2, 60)) for n in "abc")
        return [[a, b], [a], [b, c], [a, c], [c], [b]]

    with store.transaction() as tx:
        batch = limits.take_each(tx.conn, sets("batch"), at(1))
    one_by_one = [take(store, *buckets, at=at(1)) for buckets in sets("single")]
    assert [t.allowed for t in batch] == [t.allowed for t in one_by_one] == [
        True, True, True, False, True, False,
    ]  # fmt: skip
    assert [[b.value for b in t.denied] for t in batch] == [
        [b.value for b in t.denied] for t in one_by_one
    ]
    assert [len(t.rows) for t in batch] == [len(t.rows) for t in one_by_one]

    def hits(kind: str) -> list[int]:
        keys = [bucket.key for bucket in sets(kind)[0] + [sets(kind)[2][1]]]
        with store.engine.connect() as conn:
            found = dict(conn.execute(select(rate_limits.c.key, rate_limits.c.hits)).all())
        return [found.get(key, 0) for key in keys]

    assert hits("batch") == hits("single") == [2, 2, 2]


def test_concurrent_takes_never_pass_the_limit(store):
    """Eight threads, each its own transaction (on PostgreSQL, its own
    connection): exactly the limit gets through."""
    bucket = Bucket("ip", "192.0.2.1", Limit(5, 3600))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        for _ in range(3):
            results.append(take(store, bucket).allowed)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 24 and results.count(True) == 5


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, limits.UNKNOWN),
        ("", limits.UNKNOWN),
        ("not-an-address", limits.UNKNOWN),
        ("203.0.113.7, 198.51.100.1", limits.UNKNOWN),
    ],
)
def test_the_network_a_client_counts_in(ip, expected):
    assert network(ip) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::FFFF:198.51.100.7", "198.51.100.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("garbage", None),
        ("1.2.3.4.5", None),
        ("<script>", None),
        ("", None),
        (None, None),
    ],
)
def test_the_client_address_is_an_ip_address_or_nothing(host, expected):
    assert client_ip(host) == expected
