"""What an import leaves in the store, row by row: the subscribers with
their consent records, their history, the suppressions and the report,
for a file with repeated addresses, bad rows, readers who left and one
already on the list. On SQLite and on PostgreSQL.

Only the public path (``import_csv``) is used, so these expectations hold
for any way of writing the rows (they were written against the import as
it was before it inserted by executemany, and pass on both)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from subscribers.csvio import import_csv
from subscribers.models import Problem, Status, utcnow
from subscribers.schema import subscribers
from subscribers.store import Store

LABEL = 'liste "été".csv'
ROWS = [
    "email,name,status,created_at,consent_ip,source",
    "Ana.Lima@Example.com,Ana Lima,active,2024-01-02T03:04:05Z,192.0.2.1,",  # 2
    "bob@Faß.de,Bob,unsubscribed,2024-01-03,,blog",  # 3
    "ANA.LIMA@example.com,Ana again,,,,",  # 4: a repeat
    "not-an-address,,,,,",  # 5
    "cy@example.org,Cy,pending,,,",  # 6
    "dee@example.org,Dee,lapsed,,,",  # 7
    "Info@Example.org,Team,,,,",  # 8: email-validator lowercases role mailboxes
    "erased@example.com,Erased,,,,",  # 9: erased before
    "old@example.com,New Name,unsubscribed,,,",  # 10: on the list, active
    "mad@example.com,Mad,complained,,,",  # 11
    "Sean.O'Brien@example.com,Seán Ó Briain,,,,",  # 12: a quote in the address
]


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def test_an_import_leaves_these_rows_events_and_consent_records(store, tmp_path):
    old = store.add("old@example.com", name="Old Name")
    store.erase("erased@example.com")
    path = tmp_path / LABEL
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")

    started = utcnow()
    report = import_csv(store, path)
    finished = utcnow()

    assert report.problems == [
        Problem(4, "ANA.LIMA@example.com: duplicate of line 2"),
        Problem(5, "email: 'not-an-address' is not valid: An email address must have an @-sign."),
        Problem(
            7,
            "status: 'lapsed' is not one of active, pending, unsubscribed, bounced, complained "
            "(or a status of a known export)",
        ),
    ]
    assert report.suppressed == [Problem(9, "erased@example.com: skipped: the address was erased")]
    assert (report.added, report.updated, report.unchanged, report.reactivated, report.kept) == (
        6, 1, 0, 0, 0,
    )  # fmt: skip

    file = {"source": "import", "file": LABEL}
    text = f"Imported from {LABEL}"
    expected = {
        # email: (name, status, created_at, consent at, ip, consent text, line)
        "Ana.Lima@example.com": (
            "Ana Lima", Status.ACTIVE, dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "192.0.2.1", text, 2,
        ),
        "bob@xn--fa-hia.de": (
            "Bob", Status.UNSUBSCRIBED, dt.datetime(2024, 1, 3, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 3, tzinfo=dt.UTC), None, f"{text} (source: blog)", 3,
        ),
        "cy@example.org": ("Cy", Status.PENDING, None, None, None, text, 6),
        "info@example.org": ("Team", Status.ACTIVE, None, None, None, text, 8),
        "mad@example.com": ("Mad", Status.COMPLAINED, None, None, None, text, 11),
        "Sean.O'Brien@example.com": ("Seán Ó Briain", Status.ACTIVE, None, None, None, text, 12),
    }  # fmt: skip
    added = {s.email: s for s in store.iter() if s.id != old.id}
    assert sorted(added) == sorted(expected)
    assert [s.email for s in added.values()] == list(expected)  # in the order of the file
    for email, (name, status, created, consent_at, ip, consent_text, line) in expected.items():
        subscriber = added[email]
        assert (subscriber.name, subscriber.status, str(subscriber.source)) == (
            name, status, "import",
        ), email  # fmt: skip
        if created is None:
            assert started <= subscriber.created_at <= finished, email
        else:
            assert subscriber.created_at == created, email
        assert started <= subscriber.updated_at <= finished
        assert (subscriber.unsubscribed_at is not None) == (status == Status.UNSUBSCRIBED)
        assert subscriber.confirmed_at is None and subscriber.confirmation_sent_at is None
        consent = subscriber.consent
        assert (consent.at, consent.ip, consent.text) == (consent_at, ip, consent_text), email
        assert (consent.user_agent, consent.source, consent.confirmed_ip) == (None, None, None)
        [event] = store.history(subscriber.id)
        assert (event.kind, dict(event.detail)) == (
            "imported", {**file, "line": line, "status": str(status)},
        ), email  # fmt: skip
        assert started <= event.at <= finished

    changed = store.get(old.id)
    assert (changed.name, changed.status) == ("New Name", Status.UNSUBSCRIBED)
    assert changed.unsubscribed_at is not None
    assert [(e.kind, dict(e.detail)) for e in store.history(old.id)] == [
        ("subscribed", {"source": "cli"}),
        ("imported", {**file, "line": 10, "name": "changed"}),
        ("unsubscribed", {**file, "line": 10, "from": "active", "to": "unsubscribed"}),
    ]

    assert store.suppression("mad@example.com") == "complained"
    assert store.suppression("erased@example.com") == "erased"
    assert store.suppression("ana.lima@example.com") is None
    with store.reading() as tx:
        keys = dict(tx.conn.execute(select(subscribers.c.email, subscribers.c.mailbox_key)).all())
    assert keys["Ana.Lima@example.com"] == "ana.lima@example.com"
    assert keys["bob@xn--fa-hia.de"] == "bob@xn--fa-hia.de"


def test_importing_the_same_file_again_changes_nothing(store, tmp_path):
    path = tmp_path / LABEL
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    import_csv(store, path)
    before = [(s, store.history(s.id)) for s in store.iter()]
    again = import_csv(store, path)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 8)
    assert [p.line for p in again.problems] == [4, 5, 7]
    assert [(s, store.history(s.id)) for s in store.iter()] == before


def test_a_list_longer_than_a_transaction_keeps_its_order_and_its_repeats(store, tmp_path):
    """25,000 rows: more than one batch, and more than one transaction."""
    lines = ["email,name"] + [f"reader{n}@example.com,Reader {n}" for n in range(25_000)]
    lines[12_345] = "READER7@example.com,Again"
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_csv(store, path)
    assert report.problems == [Problem(12_346, "READER7@example.com: duplicate of line 9")]
    assert report.added == 24_999
    readers = store.list()
    assert [s.email for s in readers[:3]] == [f"reader{n}@example.com" for n in range(3)]
    assert readers[-1].email == "reader24999@example.com"
    for reader in (readers[0], readers[20_500], readers[-1]):
        assert store.count_events(reader.id, "imported") == 1
