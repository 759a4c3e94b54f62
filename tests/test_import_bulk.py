"""The import's fast paths give what the slow ones give.

    EmailNormalizer    each distinct domain validated once: the same
                       address or the same error as normalize_email, for
                       any text (hypothesis) and the tricky domains
    email_hasher       the same hashes as email_hash
    insert_subscribers rows that read back as insert_many's, timestamps
                       written as SQLAlchemy writes them, on SQLite and
                       PostgreSQL
    JoinedEvent        an event whose subscriber is not there is an error
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path

import email_validator
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from subscribers import addresses
from subscribers.addresses import EmailNormalizer
from subscribers.errors import StoreError, SubscriberError
from subscribers.models import (
    Consent,
    Source,
    Status,
    email_hash,
    email_key,
    mailbox_key,
    normalize_email,
    utcnow,
)
from subscribers.schema import UTC_DATETIME
from subscribers.store import Store
from subscribers.store.bulk import JoinedEvent, NewEvent, NewSubscriber, _timestamp_writer
from subscribers.store.rows import new_row
from subscribers.store.suppressions import email_hasher
from tests.test_addresses import DOMAINS, REFUSED

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
DOMAIN_POOL = [
    *DOMAINS,
    *REFUSED,
    "example.com", "Example.COM", "mail.example.co.uk", "x.local", "a.invalid", "localhost",
    "com", "a-.com", "ab--c.com", "xn--ab.com", "1.2.3.4", "[192.0.2.1]", "[IPv6:::1]", "",
    "ex ample.com", "ｅｘａｍｐｌｅ.com", "a.b.c.d.e.example", "example.com.", ".example.com",
    "ex_ample.com", "exa\u0301mple.com", "\u0301example.com", "straße.de", "bücher.example",
    "a" * 63 + ".com", "a" * 64 + ".com", ".".join(["b" * 60] * 4) + ".com",
    ".".join(["c" * 61] * 4), "ü" * 30 + ".de", "example.com<x", "exam\"ple.com",
]  # fmt: skip
LONG_DOMAIN = "a" * 63 + "." + "b" * 63 + "." + "c" * 57 + ".com"
assert len(LONG_DOMAIN) == 189
ROLES = ["info", "Info", "ABUSE", "postmaster", "Support", "noc", "security", "webmaster"]

local_parts = st.one_of(
    st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(\.[A-Za-z0-9_+-]{1,8}){0,3}", fullmatch=True),
    st.text(alphabet=ATEXT + '.."@<> \\éß\u0301\u00a0＠\t', max_size=16),
    st.sampled_from(ROLES),
    st.integers(min_value=40, max_value=260).map(lambda n: "l" * n),
    st.sampled_from(['"quoted"', '"a b"', '"a@b"', "a..b", ".a", "a.", "José", "a\u0301"]),
)
domains = st.one_of(
    st.sampled_from(DOMAIN_POOL),
    st.from_regex(r"[a-zA-Z0-9-]{1,12}(\.[a-zA-Z0-9-]{1,12}){1,3}", fullmatch=True),
    st.integers(min_value=150, max_value=260).map(
        lambda n: ".".join(["d" * 50] * (n // 51)) + "." + "e" * max(1, n % 51) + ".org"
    ),
)
addresses_text = st.builds(
    lambda space, local, at, domain, tail: f"{space}{local}{at}{domain}{tail}",
    st.sampled_from(["", " ", "\t"]),
    local_parts,
    st.sampled_from(["@", "@", "@", "@@", "", "＠"]),
    domains,
    st.sampled_from(["", " ", "\n"]),
)


def verdict(normalize, text: str) -> tuple[str, str]:
    try:
        return "ok", normalize(text)
    except SubscriberError as exc:
        return type(exc).__name__, str(exc)


SHARED = EmailNormalizer()
"""One normalizer across examples, so that a domain is often one it has seen."""


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=addresses_text)
@example(text="l" * 64 + "@" + LONG_DOMAIN)  # 254 characters: the longest address
@example(text="l" * 65 + "@" + LONG_DOMAIN)  # 255
@example(text="l" * 64 + "@Faß." + LONG_DOMAIN[4:])  # 254 as given, 259 once encoded
@example(text="x@" + "\u00ad" * 320 + "example.com")  # over 320, yet its domain maps short
@example(text="l" * 195 + "@" + "ü" * 30 + ".de")  # too long once normalized, in UTF-8
@example(text="Dana@Faß.de ")
def test_the_cached_normalizer_gives_what_normalize_email_gives(text):
    expected = verdict(normalize_email, text)
    assert verdict(SHARED, text) == expected
    assert verdict(EmailNormalizer(), text) == expected


@pytest.mark.parametrize("domain", [*DOMAINS, *REFUSED])
@pytest.mark.parametrize("local", ["dana", "Dana.Lima", "info", "a" * 64])
def test_the_tricky_domains_of_the_address_tests(domain, local):
    normalize = EmailNormalizer()
    for _ in range(2):  # the second time from the cache
        assert verdict(normalize, f"{local}@{domain}") == verdict(normalize_email, f"{local}@{domain}")


def test_each_distinct_domain_is_validated_once(monkeypatch):
    validated: list[str] = []

    def counting(text, **options):
        validated.append(text)
        return email_validator.validate_email(text, **options)

    monkeypatch.setattr(
        addresses, "_validator", lambda: (counting, email_validator.EmailNotValidError)
    )
    normalize = EmailNormalizer()
    domains = ["example.com", "Example.org", "faß.de", "mail.example.co.uk"]
    for n in range(2000):
        normalize(f"reader.{n}@{domains[n % 4]}")
    assert len(validated) == 4
    normalize("Info@example.com")  # a role mailbox: email-validator's own path
    assert len(validated) == 5


@given(
    st.lists(
        st.datetimes(
            min_value=dt.datetime(2, 1, 1),  # room for another zone's offset
            max_value=dt.datetime(9998, 12, 31),
            timezones=st.one_of(st.none(), st.just(dt.UTC), st.timezones()),
        ),
        max_size=8,
    )
)
def test_timestamps_are_written_as_sqlalchemy_writes_them_for_sqlite(values):
    dialect = sqlite.dialect()
    process = UTC_DATETIME.dialect_impl(dialect).bind_processor(dialect)
    write = _timestamp_writer(dialect)  # one writer, which remembers what it wrote
    assert write is not None and process is not None
    instants = [v.astimezone(dt.timezone(dt.timedelta(hours=-7))) for v in values if v.tzinfo]
    for value in [*values, *instants, *values, None]:
        assert write(value) == process(value)
    assert _timestamp_writer(postgresql.psycopg.dialect()) is None  # psycopg takes datetimes


def test_the_hasher_hashes_as_email_hash():
    salt = "5a" * 32
    hashed = email_hasher(salt)
    for address in ["Sam@Example.com", "sam@example.com", "dana@xn--fa-hia.de", "ü@x"]:
        plain = hashlib.sha256(address.lower().encode("utf-8")).hexdigest().encode("ascii")
        expected = hmac.new(salt.encode("ascii"), plain, hashlib.sha256).hexdigest()
        assert hashed(address) == email_hash(address, salt) == expected


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def test_bulk_rows_read_back_as_insert_many_writes_them(store):
    now = utcnow()
    consent = Consent(at=now.replace(microsecond=123), ip="192.0.2.7", text="Imported from x.csv")
    created = now.replace(year=2021, microsecond=456789)
    old = new_row("old@example.com", "Sam", Status.UNSUBSCRIBED, Source.IMPORT, consent, created)
    old["updated_at"] = old["unsubscribed_at"] = now
    fields = {**old, "email": "New@Example.com", "email_key": "new@example.com"}
    fields["mailbox_key"] = mailbox_key(fields["email"])
    with store.transaction() as tx:
        tx.insert_many([old])
        tx.insert_subscribers([NewSubscriber(**{k: fields[k] for k in NewSubscriber._fields})])
        tx.insert_events([JoinedEvent("new@example.com", "imported", now, '{"line": 2}')])
        [new_id] = [tx.get_by_email("new@example.com").id]
        tx.insert_events([NewEvent(new_id, "imported", now, '{"line": 3}')])
    a, b = store.get_by_email("old@example.com"), store.get_by_email("new@example.com")
    assert b.email == "New@Example.com"
    assert {**vars(a), "id": 0, "email": ""} == {**vars(b), "id": 0, "email": ""}
    assert [(e.kind, dict(e.detail), e.at) for e in store.history(b.id)] == [
        ("imported", {"line": 2}, now),
        ("imported", {"line": 3}, now),
    ]
    with store.reading() as tx:  # the very values stored, as the driver reads them
        raw = tx.conn.exec_driver_sql(
            "SELECT created_at, updated_at, unsubscribed_at, consent_at, mailbox_key"
            " FROM subscribers ORDER BY id"
        ).all()
    assert raw[0][:4] == raw[1][:4]
    assert (raw[0][4], raw[1][4]) == ("old@example.com", "new@example.com")


def test_an_event_whose_subscriber_is_not_there_is_an_error_and_nothing_is_written(store):
    reader = store.add("sam@example.com")
    with pytest.raises(StoreError, match="1 events found no subscriber"), store.transaction() as tx:
        tx.insert_events(
            [
                JoinedEvent(email_key("Sam@example.com"), "imported", utcnow(), "{}"),
                JoinedEvent("nobody@example.com", "imported", utcnow(), "{}"),
            ]
        )
    assert [e.kind for e in store.history(reader.id)] == ["subscribed"]
