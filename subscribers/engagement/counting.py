"""Counting opens and clicks into per-issue aggregates, one transaction per
batch of events, and never a row about a subscriber.

    count(engine, interactions, now) ──> Counted
      1. forget: seen-event keys past their 30 days; issue keys past theirs
      2. drop what cannot be counted (a problem, older than 30 days), and
         redeliveries: an event whose keyed fingerprint is in engagement_seen
      3. the issue of each message, from the ledger (sends_for_messages):
         a message it does not know (a test send, a probe, someone else's
         mail) is not counted
      4. per (issue, kind) and per (issue, link): the rows read once, locked
         in key order, their totals added to and their HyperLogLog
         registers merged in memory, written back in one statement each

What is kept: per issue a random key (engagement_issues.salt) for 30 days
from its first event; per issue and kind, and per issue and link, a total
and registers over ``blake2b(message id, key=that salt)``; per counted event
``blake2b(its fingerprint, key=the newsletter's engagement key)`` until 30
days after it happened. No subscriber id, address or message id is stored,
and once an issue's key is dropped its registers cannot be tested against
any message id, even by someone holding the ledger: its unique counts stay
as they were, and later events add to the totals only.

A unique-key race (two processes adding the same issue, link or event at
once, on PostgreSQL) rolls the batch back; it is then run again and finds
what the other added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from subscribers import db, ledger
from subscribers.engagement import hll
from subscribers.engagement.interactions import Interaction
from subscribers.models import as_utc, utcnow
from subscribers.schema import (
    engagement_counts,
    engagement_issues,
    engagement_links,
    engagement_seen,
    store_keys,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

WINDOW = dt.timedelta(days=30)
"""How long an event's key is kept (and how old an event may be to be
counted), and how long an issue's unique counts keep counting."""
CONFLICT_RETRIES = 3
KEY_NAME = "engagement"
"""store_keys' row of the newsletter's key for seen-event hashes."""


@dataclass
class Counted:
    """What a batch of opens and clicks did."""

    opens: int = 0
    machine_opens: int = 0
    clicks: int = 0
    duplicates: int = 0
    """The same event again (SNS or SQS redelivered it)."""
    uncounted: int = 0
    """Unreadable, too old, an unreadable link, or a message the ledger does not know."""


@dataclass(frozen=True)
class _Event:
    key: str
    item: Interaction
    at: dt.datetime
    issue: str = ""


def count(engine: Engine, interactions: Sequence[Interaction],
          now: dt.datetime | None = None) -> Counted:
    """Count a batch of opens and clicks in one transaction."""
    if not interactions:
        return Counted()
    moment = now or utcnow()
    for attempt in range(1, CONFLICT_RETRIES + 1):
        try:
            with db.writing(engine) as conn:
                return _count(conn, interactions, moment)
        except IntegrityError:
            if attempt == CONFLICT_RETRIES:
                raise
            log.info("a concurrent writer counted some of these first; trying again")
    raise AssertionError("unreachable")


def _count(conn: Connection, interactions: Sequence[Interaction], now: dt.datetime) -> Counted:
    out = Counted()
    _forget(conn, now)
    counted = _new_events(conn, interactions, now, out)
    if not counted:
        return out
    conn.execute(insert(engagement_seen), [
        {"event_key": event.key, "expires_at": _expiry(event.at)} for event in counted])
    salts = _salts(conn, {event.issue for event in counted}, now)
    _add_counts(conn, counted, salts)
    _add_links(conn, [event for event in counted if event.item.kind == "click"], salts)
    for event in counted:
        if event.item.kind == "open":
            out.opens += 1
        elif event.item.kind == "machine_open":
            out.machine_opens += 1
        else:
            out.clicks += 1
    return out


def _new_events(
    conn: Connection, interactions: Sequence[Interaction], now: dt.datetime, out: Counted
) -> list[_Event]:
    """The events to count, each with its issue; what is left out is added
    to ``out`` (duplicates, uncounted)."""
    key = _newsletter_key(conn, now)
    events: dict[str, _Event] = {}
    for item in interactions:
        at = min(item.at or now, now)
        if item.problem or at < now - WINDOW:
            out.uncounted += 1
            log.info("%s not counted: %s", item.kind, item.problem or "older than 30 days")
            continue
        digest = hashlib.blake2b(item.fingerprint.encode(), key=key, digest_size=32).hexdigest()
        if digest in events:
            out.duplicates += 1
            continue
        events[digest] = _Event(digest, item, at)
    seen = _seen(conn, list(events))
    out.duplicates += len(seen)
    fresh = [event for digest, event in events.items() if digest not in seen]
    sent = ledger.sends_for_messages(conn, [event.item.message_id for event in fresh])
    found = []
    for event in fresh:
        message = sent.get(event.item.message_id)
        if message is None:
            out.uncounted += 1
            log.info("%s of a message the ledger does not know: not counted", event.item.kind)
            continue
        found.append(_Event(event.key, event.item, event.at, message.issue_slug))
    return found


def _forget(conn: Connection, now: dt.datetime) -> None:
    """Seen-event keys whose 30 days are over; issue keys whose 30 days are."""
    conn.execute(_sql().forget_seen, {"now": now})
    conn.execute(_sql().forget_salts, {"now": now})


def _newsletter_key(conn: Connection, now: dt.datetime) -> bytes:
    """The key of seen-event hashes, made on first use."""
    value = conn.execute(_sql().key).scalar()
    if value is None:
        value = secrets.token_hex(32)
        conn.execute(insert(store_keys).values(name=KEY_NAME, value=value, created_at=now))
    return bytes.fromhex(str(value))


def _expiry(at: dt.datetime) -> dt.datetime:
    """The first midnight (UTC) at least :data:`WINDOW` after ``at``: when its
    key may go, kept to the day so that it says little of when it was."""
    end = (at + WINDOW).astimezone(dt.UTC)
    return end.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)


def _seen(conn: Connection, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    return set(conn.execute(_sql().seen, {"keys": keys}).scalars())


def _salts(conn: Connection, issues: set[str], now: dt.datetime) -> dict[str, bytes | None]:
    """Each issue's key (None once dropped); an issue's first event makes it."""
    found: dict[str, bytes | None] = {}
    for row in conn.execute(_sql().salts, {"issues": sorted(issues)}):
        until = as_utc(row.salt_until)
        live = row.salt is not None and until is not None and until > now
        found[row.issue_slug] = bytes.fromhex(row.salt) if live else None
    new = {issue: secrets.token_bytes(32) for issue in sorted(issues - set(found))}
    if new:
        conn.execute(insert(engagement_issues), [
            {"issue_slug": issue, "salt": salt.hex(), "salt_until": now + WINDOW}
            for issue, salt in new.items()])
    return found | new


def _hash(salt: bytes, message_id: str) -> int:
    digest = hashlib.blake2b(message_id.encode("utf-8"), key=salt, digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _add_counts(conn: Connection, events: list[_Event], salts: dict[str, bytes | None]) -> None:
    """Per issue and kind: the total, and the registers with these messages."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in events:
        groups[(event.issue, event.item.kind)].append(event.item.message_id)
    rows = conn.execute(_sql().counts, {"issues": sorted({issue for issue, _ in groups})})
    stored = {(row.issue_slug, row.kind): row.registers for row in rows}
    old, new = _changes(groups, stored, salts)
    if old:
        conn.execute(_sql().add_counts, old)
    if new:
        conn.execute(insert(engagement_counts), [
            {"issue_slug": k0, "kind": k1, "total": n, "registers": regs}
            for k0, k1, n, regs in (_row(change) for change in new)])


def _add_links(conn: Connection, clicks: list[_Event], salts: dict[str, bytes | None]) -> None:
    """Per issue and link: the clicks, and the registers with these messages."""
    if not clicks:
        return
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    urls = {}
    for event in clicks:
        link_key = hashlib.sha256(event.item.link.encode("utf-8")).hexdigest()
        urls[link_key] = event.item.link
        groups[(event.issue, link_key)].append(event.item.message_id)
    rows = conn.execute(_sql().links, {"issues": sorted({issue for issue, _ in groups}),
                                       "keys": sorted(urls)})
    stored = {(row.issue_slug, row.link_key): row.registers for row in rows}
    old, new = _changes(groups, stored, salts)
    if old:
        conn.execute(_sql().add_links, old)
    if new:
        conn.execute(insert(engagement_links), [
            {"issue_slug": k0, "link_key": k1, "url": urls[k1], "clicks": n, "registers": regs}
            for k0, k1, n, regs in (_row(change) for change in new)])


def _changes(
    groups: dict[tuple[str, str], list[str]],
    stored: dict[tuple[str, str], bytes],
    salts: dict[str, bytes | None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per row, how many to add and its registers with this batch's messages:
    (those of rows that exist, those of rows to insert), in key order."""
    old: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for group, message_ids in sorted(groups.items()):
        registers = hll.load(stored.get(group))
        salt = salts.get(group[0])
        if salt is not None:
            for message_id in message_ids:
                hll.add(registers, _hash(salt, message_id))
        change = {"k0": group[0], "k1": group[1], "n": len(message_ids),
                  "regs": bytes(registers)}
        (old if group in stored else new).append(change)
    return old, new


def _row(change: dict[str, Any]) -> tuple[str, str, int, bytes]:
    return change["k0"], change["k1"], change["n"], change["regs"]


@dataclass(frozen=True)
class _Statements:
    forget_seen: Any
    forget_salts: Any
    key: Any
    seen: Any
    salts: Any
    counts: Any
    links: Any
    add_counts: Any
    add_links: Any


@cache
def _sql() -> _Statements:
    """The statements, built once: a batch is ten events."""
    issues, counts, links, seen = (engagement_issues, engagement_counts, engagement_links,
                                   engagement_seen)
    return _Statements(
        forget_seen=delete(seen).where(seen.c.expires_at < bindparam("now")),
        forget_salts=update(issues)
        .where(issues.c.salt.is_not(None), issues.c.salt_until <= bindparam("now"))
        .values(salt=None),
        key=select(store_keys.c.value).where(store_keys.c.name == KEY_NAME),
        seen=select(seen.c.event_key)
        .where(seen.c.event_key.in_(bindparam("keys", expanding=True))),
        salts=select(issues.c.issue_slug, issues.c.salt, issues.c.salt_until)
        .where(issues.c.issue_slug.in_(bindparam("issues", expanding=True))),
        # Locked in key order, whoever locks them (PostgreSQL; SQLite has one writer).
        counts=select(counts.c.issue_slug, counts.c.kind, counts.c.registers)
        .where(counts.c.issue_slug.in_(bindparam("issues", expanding=True)))
        .order_by(counts.c.issue_slug, counts.c.kind)
        .with_for_update(),
        links=select(links.c.issue_slug, links.c.link_key, links.c.registers)
        .where(links.c.issue_slug.in_(bindparam("issues", expanding=True)),
               links.c.link_key.in_(bindparam("keys", expanding=True)))
        .order_by(links.c.issue_slug, links.c.link_key)
        .with_for_update(),
        add_counts=update(counts)
        .where(counts.c.issue_slug == bindparam("k0"), counts.c.kind == bindparam("k1"))
        .values(total=counts.c.total + bindparam("n"), registers=bindparam("regs")),
        add_links=update(links)
        .where(links.c.issue_slug == bindparam("k0"), links.c.link_key == bindparam("k1"))
        .values(clicks=links.c.clicks + bindparam("n"), registers=bindparam("regs")),
    )
