"""The store on SQLite and on a real PostgreSQL: the same tests, parametrized."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from subscribers import db
from subscribers.errors import InvalidEmail, NotFound, StoreError, SubscriberError, Suppressed
from subscribers.models import EventKind, Status, as_utc, email_hash
from subscribers.schema import metadata, send_recipients, sends, subscriber_events, suppressions
from subscribers.schema import subscribers as subscribers_table
from subscribers.store import Conflict, Store


@pytest.fixture
def store(database_url: str, tmp_path: Path):
    with Store.open(database_url, tmp_path) as opened:
        yield opened


def test_first_connect_creates_exactly_the_schema(database_url, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.connect(database_url, tmp_path)
    try:
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
    # A second start finds it at head and changes nothing.
    assert db.upgrade(database_url, tmp_path) == db.head_revision()


def test_the_head_and_the_revisions_are_alembics(database_url, tmp_path):
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from subscribers.db import migrate

    script = ScriptDirectory(str(migrate.MIGRATIONS))
    assert db.head_revision() == script.get_current_head()
    assert set(migrate._revisions()) == {rev.revision for rev in script.walk_revisions()}
    engine = db.connect(database_url, tmp_path)
    try:
        with engine.connect() as conn:
            assert db.current_revision(engine) == MigrationContext.configure(
                conn).get_current_revision()
    finally:
        engine.dispose()


def test_a_database_at_the_head_opens_without_importing_alembic(database_url, tmp_path):
    """Alembic is a third of a command's start-up: only a database that
    needs migrating pays it."""
    import subprocess
    import sys

    db.connect(database_url, tmp_path).dispose()
    opened = (
        "import sys; from pathlib import Path; from subscribers import db; "
        f"db.connect({database_url!r}, Path({str(tmp_path)!r})).dispose(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", opened], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent.parent)
    assert done.stdout.strip() == "[]"


def test_a_database_at_an_unknown_revision_is_refused(database_url, tmp_path):
    engine = db.connect(database_url, tmp_path)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StoreError, match="revision 9999, which this version"):
            db.ensure_migrated(engine)
    finally:
        engine.dispose()


def test_two_processes_starting_on_a_fresh_database_both_succeed(database_url, tmp_path):
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def start() -> None:
        barrier.wait()
        try:
            db.connect(database_url, tmp_path).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert db.upgrade(database_url, tmp_path) == db.head_revision()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    (tmp_path / "data").mkdir()
    engine = db.connect("sqlite:///data/list.db", tmp_path)  # relative to the root
    try:
        assert engine.url.database == str(tmp_path / "data" / "list.db")
        with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x@localhost/db", "not supported"),
        ("postgresql+psycopg2://x@localhost/db", "psycopg 3"),
        ("sqlite:///missing/folder/list.db", "does not exist"),
        ("not a url", "not a database URL"),
    ],
)
def test_unusable_database_urls_are_one_line_errors(url, message, tmp_path):
    with pytest.raises(StoreError, match=message) as caught:
        db.connect(url, tmp_path)
    assert "\n" not in str(caught.value)


def test_an_unreachable_postgresql_is_a_one_line_error(tmp_path):
    from tests.support.aws import free_port

    url = f"postgres://nobody:secret@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StoreError) as caught:
        db.connect(url, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1" in message
    assert "secret" not in message  # the password is hidden


def test_add_normalizes_and_addresses_are_unique_in_any_case(store):
    added = store.add("  Dana.Whitfield@EXAMPLE.com ", name="Dana")
    assert added.email == "Dana.Whitfield@example.com"
    assert added.status == Status.ACTIVE
    assert store.get(added.id) == added
    assert store.get_by_email("dana.whitfield@example.COM") == added
    with pytest.raises(SubscriberError, match="already on the list"):
        store.add("DANA.WHITFIELD@example.com")
    with pytest.raises(InvalidEmail):
        store.add("dana@")
    assert store.count() == 1
    assert [event.kind for event in store.history(added.id)] == ["subscribed"]


def test_a_suppressed_address_is_not_added_as_mailable(store):
    store.erase("gone@example.com")
    with pytest.raises(Suppressed, match="erased"):
        store.add("Gone@example.com")
    with pytest.raises(Suppressed):
        store.add("gone@example.com", status=Status.PENDING)
    # Recording that it must not be mailed is fine.
    assert store.add("gone@example.com", status=Status.UNSUBSCRIBED).status == "unsubscribed"


def test_list_and_iter_filter_by_status_and_stream_in_batches(store):
    for number in range(10):
        status = Status.UNSUBSCRIBED if number % 3 == 0 else Status.ACTIVE
        store.add(f"reader{number}@example.com", status=status)
    everyone = [subscriber.email for subscriber in store.iter(batch=3)]
    assert everyone == [f"reader{number}@example.com" for number in range(10)]
    active = store.list(Status.ACTIVE)
    assert [s.email for s in active] == [s.email for s in store.iter(Status.ACTIVE, batch=2)]
    assert len(active) == store.count(Status.ACTIVE) == 6
    assert len(store.list(limit=4)) == 4


def test_unsubscribe_is_recorded_once_and_is_harmless_to_repeat(store):
    reader = store.add("reader@example.com")
    first = store.unsubscribe(reader.id, {"via": "test"})
    assert first is not None and first.status == Status.UNSUBSCRIBED
    assert first.unsubscribed_at is not None
    again = store.unsubscribe(reader.id)
    assert again == first
    kinds = [event.kind for event in store.history(reader.id)]
    assert kinds == ["subscribed", "unsubscribed"]
    assert store.history(reader.id)[1].detail == {"from": "active", "via": "test"}
    assert store.unsubscribe(reader.id + 1000) is None


def test_record_event_is_idempotent_by_external_id_and_changes_status(store):
    reader = store.add("reader@example.com")
    assert store.record_event(
        reader.id, EventKind.BOUNCED, detail={"type": "Permanent"},
        external_id="feedback-1", status=Status.BOUNCED,
    )
    assert not store.record_event(
        reader.id, EventKind.BOUNCED, external_id="feedback-1", status=Status.BOUNCED
    )
    assert store.get(reader.id).status == Status.BOUNCED
    assert store.count_events(reader.id, EventKind.BOUNCED) == 1
    with pytest.raises(NotFound):
        store.record_event(reader.id + 1000, EventKind.DELIVERED)


def test_a_complaint_suppresses_the_address(store):
    reader = store.add("reader@example.com")
    store.record_event(reader.id, EventKind.COMPLAINED, status=Status.COMPLAINED)
    assert store.get(reader.id).status == Status.COMPLAINED
    assert store.suppression("READER@example.com") == "complained"


def test_count_events_since(store):
    reader = store.add("reader@example.com")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    store.record_event(reader.id, EventKind.SOFT_BOUNCED, at=old)
    store.record_event(reader.id, EventKind.SOFT_BOUNCED)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    assert store.count_events(reader.id, EventKind.SOFT_BOUNCED) == 2
    assert store.count_events(reader.id, EventKind.SOFT_BOUNCED, since) == 1


def _send_with(store: Store, subscriber_ids: list[int], status: str = "pending") -> int:
    now = dt.datetime.now(dt.UTC)
    with store.engine.begin() as conn:
        send_id = conn.execute(
            insert(sends)
            .values(issue_slug="calf", issue_path="issues/calf.md", subject="Calf",
                    transport="outbox", status="sending", created_at=now)
            .returning(sends.c.id)
        ).scalar_one()
        for subscriber_id in subscriber_ids:
            subscriber = store.get(subscriber_id)
            assert subscriber is not None
            conn.execute(
                insert(send_recipients).values(
                    send_id=send_id, subscriber_id=subscriber_id, email=subscriber.email,
                    name=subscriber.name, status=status, updated_at=now,
                )
            )
    return send_id


def test_erase_deletes_the_person_scrubs_the_ledger_and_keeps_a_hash(store):
    reader = store.add("Erase.Me@example.com", name="Erase Me")
    other = store.add("stays@example.com", name="Stays")
    store.record_event(reader.id, EventKind.DELIVERED)
    _send_with(store, [reader.id, other.id])

    assert store.erase("erase.me@EXAMPLE.com") is True

    assert store.get(reader.id) is None
    assert store.get_by_email("erase.me@example.com") is None
    with store.engine.connect() as conn:
        assert conn.execute(
            select(subscriber_events).where(subscriber_events.c.subscriber_id == reader.id)
        ).all() == []
        rows = {row.name: row for row in conn.execute(select(send_recipients))}
        hashes = conn.execute(select(suppressions.c.email_hash)).scalars().all()
        dump = " ".join(str(value) for row in conn.execute(select(send_recipients)) for value in row)
    assert set(rows) == {"", "Stays"}
    scrubbed = rows[""]
    assert scrubbed.email == "" and scrubbed.subscriber_id is None
    assert scrubbed.status == "skipped"  # a pending recipient is never mailed now
    assert rows["Stays"].email == "stays@example.com" and rows["Stays"].status == "pending"
    assert "Erase" not in dump and "erase.me" not in dump.lower()
    with store.transaction() as tx:
        salt = tx._salt()
    assert hashes == [email_hash("erase.me@example.com", salt)]
    assert store.erase("erase.me@example.com") is False  # nobody left to erase


def test_stats_count_by_status_and_recent_health(store):
    readers = [store.add(f"r{n}@example.com") for n in range(4)]
    store.unsubscribe(readers[0].id)
    store.record_event(readers[1].id, EventKind.BOUNCED, status=Status.BOUNCED, external_id="b1")
    store.record_event(
        readers[2].id, EventKind.COMPLAINED, status=Status.COMPLAINED, external_id="c1"
    )
    # A status change made here, not reported by the provider, is no bounce.
    store.record_event(readers[3].id, EventKind.BOUNCED, detail={"reason": "limit"})
    send_id = _send_with(store, [r.id for r in readers], status="sent")
    with store.engine.begin() as conn:
        conn.execute(
            send_recipients.update()
            .where(send_recipients.c.send_id == send_id)
            .values(sent_at=dt.datetime.now(dt.UTC))
        )
    stats = store.stats()
    assert stats.by_status == {
        "pending": 0, "active": 1, "unsubscribed": 1, "bounced": 1, "complained": 1
    }
    assert stats.total == 4
    assert (stats.sent, stats.bounced, stats.complained) == (4, 1, 1)
    assert stats.bounce_rate == 0.25
    assert stats.subscribed == 4 and stats.unsubscribed == 1
    assert stats.suppressed == 1


def test_a_failed_transaction_writes_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert("half@example.com", status=Status.ACTIVE, source="cli")
        raise RuntimeError("stop")
    assert store.get_by_email("half@example.com") is None


def test_inserting_an_address_twice_in_a_race_is_a_conflict_not_a_crash(store):
    store.add("first@example.com")
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert("FIRST@example.com", status=Status.PENDING, source="form")
    assert store.count() == 1


def test_writers_queue_instead_of_failing(store):
    """Many threads changing the list at once: every change lands."""
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            reader = store.add(f"writer{number}@example.com")
            store.record_event(reader.id, EventKind.DELIVERED)
            store.unsubscribe(reader.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert store.count(Status.UNSUBSCRIBED) == 12
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM subscriber_events")).scalar() == 36


def migrate_to(engine, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(db.MIGRATIONS))
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_the_lease_migration_keeps_the_confirmation_queue(database_url, tmp_path):
    """0002 to 0003 and back: queued confirmations stay due, with no claim."""
    engine = db.connect(database_url, tmp_path, migrate=False)

    def migrate(revision: str, *, down: bool = False) -> None:
        migrate_to(engine, revision, down=down)

    due = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    try:
        migrate("0002")
        with engine.begin() as conn:
            conn.execute(
                insert(subscribers_table).values(
                    email="q@example.com", email_key="q@example.com", status="pending",
                    source="form", created_at=due, updated_at=due, confirmation_due_at=due,
                )
            )
        migrate("0003")
        with engine.connect() as conn:
            row = conn.execute(
                select(
                    subscribers_table.c.confirmation_attempts,
                    subscribers_table.c.confirmation_claimed_by,
                    subscribers_table.c.confirmation_due_at,
                )
            ).one()
        assert row.confirmation_attempts == 0 and row.confirmation_claimed_by is None
        assert as_utc(row.confirmation_due_at) == due
        migrate("0002", down=True)
        with engine.connect() as conn:
            assert conn.execute(select(subscribers_table.c.email)).scalar_one() == "q@example.com"
    finally:
        engine.dispose()


def test_the_signup_migration_keeps_the_links_already_mailed(database_url, tmp_path):
    """0005 to 0006: each pending subscriber gets a signup with an empty nonce
    (the links mailed before carry none) and their name and consent; every
    row gets its mailbox key. And back."""
    from subscribers.models import Newsletter
    from subscribers.schema import signups
    from subscribers.service import Origin, Subscriptions
    from subscribers.tokens import Signer

    newsletter = Newsletter(
        "Letter", "https://letter.example", "news@letter.example", "news@letter.example", "Here"
    )

    engine = db.connect(database_url, tmp_path, migrate=False)

    def migrate(revision: str, *, down: bool = False) -> None:
        migrate_to(engine, revision, down=down)

    at = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    try:
        migrate("0005")
        with engine.begin() as conn:
            for email, status in (("Pen.Ding+x@GoogleMail.com", "pending"), ("a@example.com", "active")):
                conn.execute(
                    insert(subscribers_table).values(
                        email=email, email_key=email.lower(), name="Pat", status=status,
                        source="form", created_at=at, updated_at=at, consent_at=at,
                        consent_ip="192.0.2.1", consent_text="Yes", confirmation_sent_at=at,
                    )
                )
        migrate("0006")
        with engine.connect() as conn:
            keys = dict(conn.execute(select(subscribers_table.c.email, subscribers_table.c.mailbox_key)).all())
            # The columns 0006 has (later revisions add more).
            (legacy,) = conn.execute(
                select(
                    signups.c.nonce, signups.c.name, signups.c.consent_ip,
                    signups.c.consent_text, signups.c.mailed_at,
                )
            ).all()
        assert keys == {"Pen.Ding+x@GoogleMail.com": "pending@gmail.com", "a@example.com": "a@example.com"}
        assert (legacy.nonce, legacy.name, legacy.consent_ip, legacy.consent_text) == ("", "Pat", "192.0.2.1", "Yes")
        assert as_utc(legacy.mailed_at) == at
        # A link mailed before the migration still confirms, on today's schema.
        migrate("head")
        store = Store(engine)
        service = Subscriptions(
            store, Signer("migration-test-secret-0123"), newsletter, lambda m: None
        )
        pending = store.find("Pen.Ding+x@GoogleMail.com")
        old_link = service.signer.confirm(pending.id, dt.datetime.now(dt.UTC))
        assert service.confirm(old_link, Origin(ip="198.51.100.1")).new
        migrate("0005", down=True)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(subscribers_table)).scalar_one() == 2
    finally:
        engine.dispose()


def test_the_salt_migration_salts_the_hashes_kept_before(database_url, tmp_path):
    """0006 to 0007: a suppression kept as the address's plain SHA-256 still
    suppresses it, now salted; and a downgrade refuses to unsalt it."""
    import hashlib

    engine = db.connect(database_url, tmp_path, migrate=False)
    at = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    try:
        migrate_to(engine, "0006")
        plain = hashlib.sha256(b"gone@example.com").hexdigest()
        with engine.begin() as conn:
            conn.execute(insert(suppressions).values(email_hash=plain, reason="erased", created_at=at))
        migrate_to(engine, "0007")
        store = Store(engine)
        assert store.suppression("Gone@Example.com") == "erased"
        with engine.connect() as conn:
            assert conn.execute(select(suppressions.c.email_hash)).scalar_one() != plain
        with pytest.raises(RuntimeError, match="cannot be unsalted"):
            migrate_to(engine, "0006", down=True)
    finally:
        engine.dispose()
