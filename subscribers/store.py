"""The subscriber store: the only SQL in the package (besides the send
ledger's), the same for SQLite and PostgreSQL.

    Store                    reading: get, get_by_email, list, iter, history, stats
                             writing: add, unsubscribe, erase, set_status, record_event
    Store.transaction()      a Transaction: the primitives that service.py
                             combines into the subscription rules, atomically
                             (signups waiting for confirmation and the rate
                             limits among them; the limits' SQL is in limits.py)

Every write happens in a transaction that also records what changed in the
subscriber's history. Reads that span the whole list (``iter``) stream in
batches through a server-side cursor, in constant memory.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from subscribers import db, limits
from subscribers.errors import NotFound, StoreError, SubscriberError, Suppressed, first_line
from subscribers.models import (
    Consent,
    Event,
    EventKind,
    Signup,
    Source,
    Stats,
    Status,
    Subscriber,
    SuppressionReason,
    as_utc,
    dump_detail,
    email_hash,
    email_key,
    load_detail,
    mailbox_key,
    normalize_email,
    utcnow,
)
from subscribers.schema import (
    send_recipients,
    signups,
    store_keys,
    subscriber_events,
    subscribers,
    suppressions,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Row, Select

# The statements run for every signup, built once (and so compiled once).
_BY_ID = select(subscribers).where(subscribers.c.id == bindparam("subscriber_id"))
_BY_KEY = select(subscribers).where(subscribers.c.email_key == bindparam("key"))
_INSERT = insert(subscribers).returning(subscribers.c.id)
_UPDATE = update(subscribers).where(subscribers.c.id == bindparam("subscriber_id"))
_INSERT_EVENT = insert(subscriber_events)
_BY_ID_LOCKED = _BY_ID.with_for_update()
_BY_KEY_LOCKED = _BY_KEY.with_for_update()
_BY_KEYS = select(subscribers).where(subscribers.c.email_key.in_(bindparam("keys", expanding=True)))
_BY_KEYS_LOCKED = _BY_KEYS.order_by(subscribers.c.email_key).with_for_update()
_RECORDED = select(subscriber_events.c.external_id).where(
    subscriber_events.c.external_id.in_(bindparam("ids", expanding=True))
)
_SIGNUP = select(signups).where(
    signups.c.subscriber_id == bindparam("subscriber_id"), signups.c.nonce == bindparam("nonce")
)
_LATEST_SIGNUP = (
    select(signups)
    .where(signups.c.subscriber_id == bindparam("subscriber_id"))
    .order_by(signups.c.id.desc())
    .limit(1)
)
_INSERT_SIGNUP = insert(signups)
_SALT = select(store_keys.c.value).where(store_keys.c.name == "suppression")
_REPORTED_KINDS = (str(EventKind.BOUNCED), str(EventKind.COMPLAINED))
_REPORTED = (
    select(subscribers.c.id)
    .where(subscribers.c.mailbox_key == bindparam("mailbox"))
    .where(
        subscribers.c.status.in_(_REPORTED_KINDS)
        | select(subscriber_events.c.id)
        .where(subscriber_events.c.subscriber_id == subscribers.c.id)
        .where(subscriber_events.c.kind.in_(_REPORTED_KINDS))
        .exists()
    )
    .limit(1)
)

log = logging.getLogger(__name__)

BATCH = 1000
T = TypeVar("T")


class Conflict(StoreError):
    """Two writers raced for the same address; the transaction can be retried."""


@dataclass(frozen=True)
class ClaimedConfirmation:
    """A confirmation message a mailer has claimed: send it, record the result."""

    subscriber: Subscriber
    attempt: int
    """1 for the first claim since the signup, 2 for the next..."""


class Store:
    """The subscriber list in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, root: Path) -> Store:
        """Connect (migrating if needed) to the database at ``url``."""
        return cls(db.connect(url, root))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic change. A unique-key race (two writers adding the same
        address) surfaces as :class:`Conflict`, and nothing is written."""
        try:
            with db.writing(self.engine) as conn:
                yield Transaction(conn)
        except IntegrityError as exc:
            raise Conflict(f"the database refused a change: {first_line(exc)}") from None

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """Reads that go together, on one connection, taking no write lock."""
        with self.engine.connect() as conn:
            yield Transaction(conn)

    def retrying(self, work: Callable[[Transaction], T], attempts: int = 2) -> T:
        """Run ``work`` in a transaction, again if it loses a unique-key race
        (:class:`Conflict`): the next run sees what the other writer added."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as tx:
                    return work(tx)
            except Conflict:
                if attempt == attempts:
                    raise
                log.info("a concurrent writer got there first; trying again")
        raise AssertionError("attempts must be at least 1")

    # -- reading -------------------------------------------------------------

    def get(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            return Transaction(conn).get(subscriber_id)

    def get_by_email(self, email: str) -> Subscriber | None:
        """The subscriber with this address, in any letter case."""
        with self.engine.connect() as conn:
            return Transaction(conn).get_by_email(email)

    def find(self, email: str) -> Subscriber:
        """Like :meth:`get_by_email`, but :class:`NotFound` when missing."""
        subscriber = self.get_by_email(email)
        if subscriber is None:
            raise NotFound(f"{email.strip()}: no such subscriber")
        return subscriber

    def list(self, status: Status | None = None, limit: int | None = None) -> list[Subscriber]:
        """Subscribers in the order they joined; for short lists (see ``iter``)."""
        query = _filtered(select(subscribers), status).order_by(subscribers.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_subscriber(row) for row in conn.execute(query)]

    def iter(self, status: Status | None = None, batch: int = BATCH) -> Iterator[Subscriber]:
        """Every subscriber (with ``status``), streamed ``batch`` rows at a time.

        A server-side cursor on PostgreSQL, SQLite's own stepping otherwise:
        memory stays flat however long the list. The connection is held until
        the iterator is exhausted or closed.
        """
        query = _filtered(select(subscribers), status).order_by(subscribers.c.id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query)
            for row in result:
                yield _subscriber(row)

    def count(self, status: Status | None = None) -> int:
        query = _filtered(select(func.count()).select_from(subscribers), status)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def history(self, subscriber_id: int) -> builtins.list[Event]:
        """The subscriber's events, oldest first."""
        query = (
            select(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .order_by(subscriber_events.c.at, subscriber_events.c.id)
        )
        with self.engine.connect() as conn:
            return [_event(row) for row in conn.execute(query)]

    def count_events(
        self, subscriber_id: int, kind: EventKind | str, since: dt.datetime | None = None
    ) -> int:
        """How many ``kind`` events the subscriber has had (since ``since``)."""
        with self.engine.connect() as conn:
            return Transaction(conn).count_events(subscriber_id, kind, since)

    def suppression(self, email: str) -> str | None:
        """Why the address must not be mailed (erased, complained), or None."""
        with self.engine.connect() as conn:
            return Transaction(conn).suppression(email)

    def signups(self, subscriber_id: int) -> builtins.list[Signup]:
        """The subscriber's signups waiting for confirmation, oldest first."""
        query = select(signups).where(signups.c.subscriber_id == subscriber_id)
        with self.engine.connect() as conn:
            return [_signup(row) for row in conn.execute(query.order_by(signups.c.id))]

    def stats(self, days: int = 30, now: dt.datetime | None = None) -> Stats:
        """Counts by status, and what happened over the last ``days`` days."""
        since = (now or utcnow()) - dt.timedelta(days=days)
        with self.engine.connect() as conn:
            by_status = {
                str(status): int(count)
                for status, count in conn.execute(
                    select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
                )
            }
            # Every event by kind, and those the provider reported (events
            # with its feedback id, counted by count(external_id)), as opposed
            # to status changes made here (imports, the transient bounce
            # limit): the rates SES and mailbox providers judge.
            events: dict[str, int] = {}
            reported: dict[str, int] = {}
            for kind, count, from_provider in conn.execute(
                select(
                    subscriber_events.c.kind,
                    func.count(),
                    func.count(subscriber_events.c.external_id),
                )
                .where(subscriber_events.c.at >= since)
                .group_by(subscriber_events.c.kind)
            ):
                events[str(kind)] = int(count)
                if from_provider:
                    reported[str(kind)] = int(from_provider)
            sent = conn.execute(
                select(func.count())
                .select_from(send_recipients)
                .where(send_recipients.c.status == "sent")
                .where(send_recipients.c.sent_at >= since)
            ).scalar_one()
            suppressed = conn.execute(select(func.count()).select_from(suppressions)).scalar_one()
        return Stats(
            by_status={str(status): by_status.get(str(status), 0) for status in Status},
            days=days,
            subscribed=events.get(EventKind.SUBSCRIBED, 0) + events.get(EventKind.IMPORTED, 0),
            confirmed=events.get(EventKind.CONFIRMED, 0),
            unsubscribed=events.get(EventKind.UNSUBSCRIBED, 0),
            sent=int(sent),
            bounced=reported.get(EventKind.BOUNCED, 0),
            complained=reported.get(EventKind.COMPLAINED, 0),
            delivered=reported.get(EventKind.DELIVERED, 0),
            suppressed=int(suppressed),
        )

    # -- writing -------------------------------------------------------------

    def add(
        self,
        email: str,
        *,
        name: str = "",
        status: Status = Status.ACTIVE,
        source: Source = Source.CLI,
        consent: Consent | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Subscriber:
        """Put a new address on the list.

        Refuses an address already on it, and one that was erased or
        complained if it would be mailed (pending or active): only the
        reader's own confirmed subscription brings such an address back.
        """
        address = normalize_email(email)
        with self.transaction() as tx:
            existing = tx.get_by_email(address)
            if existing is not None:
                raise SubscriberError(f"{address}: already on the list ({existing.status})")
            reason = tx.suppression(address)
            if reason and not status.has_left:
                raise Suppressed(
                    f"{address}: this address was {reason}; only a new subscription "
                    "the reader confirms can bring it back"
                )
            subscriber = tx.insert(
                address, name=name, status=status, source=source, consent=consent
            )
            tx.add_event(
                subscriber.id, EventKind.SUBSCRIBED, {"source": str(source), **(detail or {})}
            )
            if status == Status.COMPLAINED:
                tx.suppress(address, SuppressionReason.COMPLAINED)
            return subscriber

    def unsubscribe(
        self, subscriber_id: int, detail: Mapping[str, Any] | None = None
    ) -> Subscriber | None:
        """Take the subscriber off the list; harmless to repeat. Bounced and
        complained subscribers keep their status (they are not mailed either).
        None if there is no such subscriber (erased, say)."""
        with self.transaction() as tx:
            subscriber = tx.get(subscriber_id, lock=True)
            if subscriber is None or subscriber.status.has_left:
                return subscriber
            return tx.set_status(subscriber, Status.UNSUBSCRIBED, EventKind.UNSUBSCRIBED, detail)

    def set_status(
        self,
        subscriber_id: int,
        status: Status,
        kind: EventKind | str,
        detail: Mapping[str, Any] | None = None,
    ) -> Subscriber:
        """Change a subscriber's status and record ``kind`` in their history."""
        with self.transaction() as tx:
            subscriber = tx.get(subscriber_id, lock=True)
            if subscriber is None:
                raise NotFound(f"subscriber {subscriber_id}: no such subscriber")
            return tx.set_status(subscriber, status, kind, detail)

    def record_event(
        self,
        subscriber_id: int,
        kind: EventKind | str,
        *,
        detail: Mapping[str, Any] | None = None,
        send_id: int | None = None,
        external_id: str | None = None,
        at: dt.datetime | None = None,
        status: Status | None = None,
    ) -> bool:
        """Add an event to a subscriber's history, and with ``status`` change
        their status in the same transaction.

        ``external_id`` (a provider's feedback id) makes it idempotent: an
        event already recorded under it changes nothing and returns False.
        A complaint (``status=complained``) also suppresses the address, so
        no import ever brings it back.
        """
        try:
            with self.transaction() as tx:
                if external_id is not None and tx.has_external_id(external_id):
                    return False
                subscriber = tx.get(subscriber_id, lock=True)
                if subscriber is None:
                    raise NotFound(f"subscriber {subscriber_id}: no such subscriber")
                tx.add_event(
                    subscriber_id, kind, detail, send_id=send_id, external_id=external_id, at=at
                )
                if status is not None and status != subscriber.status:
                    tx.set_status(subscriber, status, None)
                elif status == Status.COMPLAINED:
                    tx.suppress(subscriber.email, SuppressionReason.COMPLAINED)
                return True
        except Conflict:
            if external_id is not None:
                return False  # recorded by a concurrent writer
            raise

    def erase(self, email: str) -> bool:
        """GDPR erasure: delete the subscriber and their history, scrub their
        address, name and provider ids from every send's ledger, and keep
        only a salted hash of the address as a suppression. True if there
        was a subscriber. Then :func:`subscribers.db.forget_deleted` so that
        the deleted rows are not left in the database file either."""
        address = normalize_email(email)
        with self.transaction() as tx:
            subscriber = tx.get_by_email(address, lock=True)
            tx.suppress(address, SuppressionReason.ERASED)
            if subscriber is not None:
                tx.erase(subscriber.id)
        if subscriber is not None:
            log.info("erased subscriber %d", subscriber.id)
        return subscriber is not None

    def forget_deleted(self) -> bool:
        """:func:`subscribers.db.forget_deleted` on this store's database."""
        return db.forget_deleted(self.engine)


class Transaction:
    """The primitives of one transaction; built by :meth:`Store.transaction`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._salt_value: str | None = None

    # -- subscribers ---------------------------------------------------------

    def get(self, subscriber_id: int, *, lock: bool = False) -> Subscriber | None:
        query = _BY_ID_LOCKED if lock else _BY_ID
        row = self.conn.execute(query, {"subscriber_id": subscriber_id}).first()
        return _subscriber(row) if row else None

    def get_by_email(self, email: str, *, lock: bool = False) -> Subscriber | None:
        query = _BY_KEY_LOCKED if lock else _BY_KEY
        row = self.conn.execute(query, {"key": email_key(email.strip())}).first()
        return _subscriber(row) if row else None

    def get_many(self, keys: Sequence[str], *, lock: bool = False) -> dict[str, Subscriber]:
        """Subscribers by email key, for a batch of keys. With ``lock`` their
        rows are locked in key order, so that two writers locking batches
        that overlap never deadlock."""
        if not keys:
            return {}
        query = _BY_KEYS_LOCKED if lock else _BY_KEYS
        rows = self.conn.execute(query, {"keys": sorted(set(keys))})
        return {row.email_key: _subscriber(row) for row in rows}

    def insert(
        self,
        email: str,
        *,
        name: str = "",
        status: Status,
        source: Source,
        consent: Consent | None = None,
        created_at: dt.datetime | None = None,
        confirmation_due_at: dt.datetime | None = None,
    ) -> Subscriber:
        values = new_row(email, name, status, source, consent, created_at)
        values["confirmation_due_at"] = confirmation_due_at
        subscriber_id = self.conn.execute(_INSERT, values).scalar_one()
        return _subscriber({"id": subscriber_id, **values})

    def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Insert rows made by :func:`new_row`; their ids by email key."""
        if not rows:
            return {}
        result = self.conn.execute(
            insert(subscribers).returning(subscribers.c.email_key, subscribers.c.id), rows
        )
        return {key: int(subscriber_id) for key, subscriber_id in result}

    def update(self, subscriber_id: int, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        self.conn.execute(_UPDATE, {"subscriber_id": subscriber_id, **values})

    def set_status(
        self,
        subscriber: Subscriber,
        status: Status,
        kind: EventKind | str | None,
        detail: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> Subscriber:
        """Move ``subscriber`` to ``status`` (with the timestamps that go with
        it) and record ``kind``, if given, with ``detail``."""
        now = utcnow()
        changes: dict[str, Any] = {"status": str(status), "updated_at": now, **values}
        if status == Status.UNSUBSCRIBED:
            changes.setdefault("unsubscribed_at", now)
        if status != Status.PENDING:
            changes.setdefault("confirmation_due_at", None)
            # No link mailed before this change may confirm a later signup.
            self.drop_signups(subscriber.id)
        self.update(subscriber.id, **changes)
        if kind is not None:
            self.add_event(
                subscriber.id, kind, {"from": str(subscriber.status), **(detail or {})}, at=now
            )
        if status == Status.COMPLAINED:
            self.suppress(subscriber.email, SuppressionReason.COMPLAINED)
        updated = self.get(subscriber.id)
        assert updated is not None
        return updated

    def claim_confirmations(
        self, limit: int, now: dt.datetime, *, worker: str, lease: dt.timedelta
    ) -> list[ClaimedConfirmation]:
        """Claim up to ``limit`` pending subscribers whose confirmation message
        is due, oldest first, for ``worker``, until ``now + lease``: their
        message is due again then, unless the worker records a result (or
        :meth:`extend_confirmations`) before. Each claim counts as an attempt.
        On PostgreSQL, rows another mailer is claiming are skipped."""
        query = (
            select(subscribers)
            .where(subscribers.c.confirmation_due_at <= now)
            .where(subscribers.c.status == str(Status.PENDING))
            .order_by(subscribers.c.confirmation_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = self.conn.execute(query).all()
        if rows:
            self.conn.execute(
                update(subscribers)
                .where(subscribers.c.id.in_([row.id for row in rows]))
                .values(
                    confirmation_due_at=now + lease,
                    confirmation_claimed_by=worker,
                    confirmation_attempts=subscribers.c.confirmation_attempts + 1,
                )
            )
        return [
            ClaimedConfirmation(_subscriber(row), int(row.confirmation_attempts) + 1)
            for row in rows
        ]

    def extend_confirmations(self, worker: str, until: dt.datetime) -> int:
        """Move the end of every lease ``worker`` still holds to ``until``."""
        result = self.conn.execute(
            update(subscribers)
            .where(subscribers.c.confirmation_claimed_by == worker)
            .where(subscribers.c.confirmation_due_at.is_not(None))
            .where(subscribers.c.status == str(Status.PENDING))
            .values(confirmation_due_at=until)
        )
        return int(result.rowcount or 0)

    def release_confirmations(
        self, worker: str, subscriber_ids: Sequence[int], due: dt.datetime
    ) -> None:
        """Give back claims ``worker`` holds and did not try: due at ``due``,
        and the claim not counted as an attempt."""
        if subscriber_ids:
            self.conn.execute(
                update(subscribers)
                .where(subscribers.c.id.in_(list(subscriber_ids)))
                .where(subscribers.c.confirmation_claimed_by == worker)
                .values(
                    confirmation_due_at=due,
                    confirmation_claimed_by=None,
                    confirmation_attempts=subscribers.c.confirmation_attempts - 1,
                )
            )

    # -- signups waiting for confirmation --------------------------------------

    def add_signup(
        self, subscriber_id: int, nonce: str, name: str, consent: Consent
    ) -> Signup:
        """Keep a form signup, with the name and consent it brings, until its
        link (the one with ``nonce``) is confirmed."""
        at = consent.at or utcnow()
        values = {
            "subscriber_id": subscriber_id,
            "nonce": nonce,
            "name": name,
            "consent_at": at,
            "consent_ip": consent.ip,
            "consent_user_agent": consent.user_agent,
            "consent_text": consent.text,
            "created_at": at,
            "mailed_at": None,
        }
        signup_id = self.conn.execute(_INSERT_SIGNUP.returning(signups.c.id), values).scalar_one()
        return _signup({"id": signup_id, **values})

    def signup(self, subscriber_id: int, nonce: str) -> Signup | None:
        """The subscriber's signup whose link carries ``nonce``, if it still waits."""
        row = self.conn.execute(_SIGNUP, {"subscriber_id": subscriber_id, "nonce": nonce}).first()
        return _signup(row) if row else None

    def latest_signup(self, subscriber_id: int) -> Signup | None:
        """The subscriber's newest signup: the one a confirmation message is for."""
        row = self.conn.execute(_LATEST_SIGNUP, {"subscriber_id": subscriber_id}).first()
        return _signup(row) if row else None

    def signup_mailed(self, signup_id: int, at: dt.datetime) -> None:
        self.conn.execute(update(signups).where(signups.c.id == signup_id).values(mailed_at=at))

    def drop_signups(
        self, subscriber_id: int, *, unmailed_or_before: dt.datetime | None = None
    ) -> None:
        """Forget the subscriber's signups, and so their links: all of them,
        or with ``unmailed_or_before`` those never mailed (nobody has their
        link) and those last mailed before then (their links have expired)."""
        query = delete(signups).where(signups.c.subscriber_id == subscriber_id)
        if unmailed_or_before is not None:
            query = query.where(
                signups.c.mailed_at.is_(None) | (signups.c.mailed_at < unmailed_or_before)
            )
        self.conn.execute(query)

    # -- rate limits -------------------------------------------------------------

    def take_limits(self, buckets: Sequence[limits.Bucket], now: dt.datetime) -> limits.Taken:
        """Count a hit in every bucket, or in none when one is over its limit."""
        return limits.take(self.conn, buckets, now)

    def give_back_limits(self, taken: limits.Taken) -> None:
        limits.give_back(self.conn, taken.rows)

    def mailbox_was_reported(self, mailbox: str) -> bool:
        """Whether an address of this mailbox (:func:`~subscribers.models.mailbox_key`)
        complained or bounced permanently, as its status or history says."""
        return self.conn.execute(_REPORTED, {"mailbox": mailbox}).first() is not None

    def erase(self, subscriber_id: int) -> None:
        """Delete a subscriber and (by cascade) their history; scrub the ledger."""
        self.conn.execute(
            update(send_recipients)
            .where(send_recipients.c.subscriber_id == subscriber_id)
            .values(
                email="",
                name="",
                # A provider id can name the reader (an old outbox file name did).
                message_id=None,
                status=case(
                    (send_recipients.c.status.in_(("pending", "failed")), "skipped"),
                    else_=send_recipients.c.status,
                ),
                error=case(
                    (send_recipients.c.status.in_(("pending", "failed")), "erased"),
                    else_=send_recipients.c.error,
                ),
                updated_at=utcnow(),
            )
        )
        self.conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))

    # -- history -------------------------------------------------------------

    def add_event(
        self,
        subscriber_id: int,
        kind: EventKind | str,
        detail: Mapping[str, Any] | None = None,
        *,
        send_id: int | None = None,
        external_id: str | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        self.conn.execute(
            _INSERT_EVENT,
            {
                "subscriber_id": subscriber_id,
                "kind": str(kind),
                "at": at or utcnow(),
                "detail": dump_detail(detail),
                "send_id": send_id,
                "external_id": external_id,
            },
        )

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert many events: dicts with subscriber_id, kind, at and detail (JSON)."""
        if rows:
            self.conn.execute(insert(subscriber_events), rows)

    def count_events(
        self, subscriber_id: int, kind: EventKind | str, since: dt.datetime | None = None
    ) -> int:
        """How many ``kind`` events the subscriber has had (since ``since``)."""
        query = (
            select(func.count())
            .select_from(subscriber_events)
            .where(subscriber_events.c.subscriber_id == subscriber_id)
            .where(subscriber_events.c.kind == str(kind))
        )
        if since is not None:
            query = query.where(subscriber_events.c.at >= since)
        return int(self.conn.execute(query).scalar_one())

    def has_external_id(self, external_id: str) -> bool:
        """Whether an event was already recorded under ``external_id``."""
        return bool(self.existing_external_ids([external_id]))

    def existing_external_ids(self, external_ids: Sequence[str]) -> set[str]:
        """Those of ``external_ids`` already recorded in someone's history."""
        if not external_ids:
            return set()
        rows = self.conn.execute(_RECORDED, {"ids": sorted(set(external_ids))})
        return {str(value) for value in rows.scalars()}

    # -- suppressions --------------------------------------------------------

    def _salt(self) -> str:
        """The newsletter's suppression salt, made on first use where a
        database has none (migration 0007 makes it)."""
        if self._salt_value is None:
            value = self.conn.execute(_SALT).scalar()
            if value is None:
                value = secrets.token_hex(32)
                self.conn.execute(
                    insert(store_keys).values(name="suppression", value=value, created_at=utcnow())
                )
            self._salt_value = str(value)
        return self._salt_value

    def suppressed(self, emails: Sequence[str]) -> dict[str, str]:
        """The suppressed ones among ``emails``, each with its reason."""
        if not emails:
            return {}
        salt = self._salt()
        by_hash = {email_hash(email, salt): email for email in emails}
        query = select(suppressions.c.email_hash, suppressions.c.reason).where(
            suppressions.c.email_hash.in_(sorted(by_hash))
        )
        return {by_hash[row.email_hash]: row.reason for row in self.conn.execute(query)}

    def suppression(self, email: str) -> str | None:
        """Why ``email`` must not be mailed (erased, complained), or None."""
        return self.suppressed([email]).get(email)

    def suppress(self, email: str, reason: SuppressionReason) -> None:
        """Never mail ``email`` again without a new confirmed subscription.
        An existing suppression keeps its first reason."""
        if self.suppression(email) is None:
            self.conn.execute(
                insert(suppressions).values(
                    email_hash=email_hash(email, self._salt()),
                    reason=str(reason),
                    created_at=utcnow(),
                )
            )

    def lift_suppression(self, email: str) -> bool:
        """Forget a suppression: the reader has confirmed a new subscription."""
        result = self.conn.execute(
            delete(suppressions).where(
                suppressions.c.email_hash == email_hash(email, self._salt())
            )
        )
        return bool(result.rowcount)


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


def new_row(
    email: str,
    name: str,
    status: Status,
    source: Source,
    consent: Consent | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The column values of a new subscriber (``email`` already normalized)."""
    now = utcnow()
    consent = consent or Consent()
    return {
        "email": email,
        "email_key": email_key(email),
        "mailbox_key": mailbox_key(email),
        "name": name,
        "status": str(status),
        "source": str(source),
        "created_at": created_at or now,
        "updated_at": now,
        "confirmed_at": consent.confirmed_at,
        "unsubscribed_at": now if status == Status.UNSUBSCRIBED else None,
        **consent_columns(consent),
        "confirmed_ip": consent.confirmed_ip,
        "confirmed_user_agent": consent.confirmed_user_agent,
        "confirmation_sent_at": None,
        "confirmation_due_at": None,
    }


def consent_columns(consent: Consent) -> dict[str, Any]:
    """The consent record as column values, for an update."""
    return {
        "consent_at": consent.at,
        "consent_ip": consent.ip,
        "consent_user_agent": consent.user_agent,
        "consent_text": consent.text,
    }


def _subscriber(row: Row[Any] | Mapping[str, Any]) -> Subscriber:
    data: Mapping[Any, Any] = row if isinstance(row, Mapping) else row._mapping
    return Subscriber(
        id=int(data["id"]),
        email=data["email"],
        name=data["name"] or "",
        status=Status(data["status"]),
        source=Source(data["source"]),
        created_at=as_utc(data["created_at"]) or utcnow(),
        updated_at=as_utc(data["updated_at"]) or utcnow(),
        confirmed_at=as_utc(data["confirmed_at"]),
        unsubscribed_at=as_utc(data["unsubscribed_at"]),
        confirmation_sent_at=as_utc(data["confirmation_sent_at"]),
        consent=Consent(
            at=as_utc(data["consent_at"]),
            ip=data["consent_ip"],
            user_agent=data["consent_user_agent"],
            text=data["consent_text"],
            confirmed_at=as_utc(data["confirmed_at"]),
            confirmed_ip=data["confirmed_ip"],
            confirmed_user_agent=data["confirmed_user_agent"],
        ),
    )


def _signup(row: Row[Any] | Mapping[str, Any]) -> Signup:
    data: Mapping[Any, Any] = row if isinstance(row, Mapping) else row._mapping
    return Signup(
        id=int(data["id"]),
        subscriber_id=int(data["subscriber_id"]),
        nonce=data["nonce"],
        name=data["name"] or "",
        consent=Consent(
            at=as_utc(data["consent_at"]),
            ip=data["consent_ip"],
            user_agent=data["consent_user_agent"],
            text=data["consent_text"],
        ),
        created_at=as_utc(data["created_at"]) or utcnow(),
        mailed_at=as_utc(data["mailed_at"]),
    )


def _event(row: Row[Any]) -> Event:
    return Event(
        id=int(row.id),
        subscriber_id=int(row.subscriber_id),
        kind=row.kind,
        at=as_utc(row.at) or utcnow(),
        detail=load_detail(row.detail),
        send_id=row.send_id,
        external_id=row.external_id,
    )


def _filtered(query: Select[Any], status: Status | None) -> Select[Any]:
    return query if status is None else query.where(subscribers.c.status == str(status))


def chunks(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
