"""The rules for importing subscribers from another list.

Imports never raise a subscriber's status (pending or left to active)
unless asked to (``reactivate``), never for a suppressed or complained
address, and always honour a status that means "do not mail" (a reader who
unsubscribed elsewhere stays unsubscribed here). Importing the same rows
again changes nothing.

    plan_import(...)          what one row does to the list: a pure function
    import_subscribers(...)   rows into the store: many batches per
                              transaction, each batch's new rows and
                              events inserted by executemany
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from enum import Enum
from functools import partial
from typing import Any, NamedTuple

from subscribers.models import (
    Candidate,
    EventKind,
    ImportReport,
    Problem,
    Source,
    Status,
    Subscriber,
    SuppressionReason,
    dump_detail,
    email_key,
    mailbox_key,
    utcnow,
)
from subscribers.store import Store, Transaction
from subscribers.store.bulk import JoinedEvent, NewEvent, NewSubscriber
from subscribers.store.rows import BATCH, chunks

TRANSACTION = 20 * BATCH
"""Rows per transaction: few commits, yet the write lock (SQLite's, which
signups wait for) is held well under a second at a time."""


class Action(Enum):
    ADD = "add"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REACTIVATE = "reactivate"
    KEEP = "keep"
    SUPPRESSED = "suppressed"


class Plan(NamedTuple):
    """What importing one row does to the list (a named tuple: one per row)."""

    action: Action
    status: Status | None = None
    """The new status, when it changes."""
    name: str | None = None
    """The new name, when it changes."""
    reason: str = ""


def plan_import(
    existing: Subscriber | None,
    row: Candidate,
    suppressed: str | None,
    reactivate: bool,
) -> Plan:
    """The rules for one imported row (see the module's docstring)."""
    if existing is None:
        if suppressed and not row.status.has_left:
            return Plan(Action.SUPPRESSED, reason=f"the address was {suppressed}")
        return Plan(Action.ADD, status=row.status, name=row.name)

    name = row.name if row.name and row.name != existing.name else None
    current = existing.status
    if row.status == current:
        status = None
    elif row.status == Status.COMPLAINED or (row.status.has_left and not current.has_left):
        status = row.status  # "do not mail" always wins
    elif row.status.has_left:
        status = None  # left already, for another reason
    elif current == Status.ACTIVE:
        status = None  # never lowered to pending
    elif current == Status.COMPLAINED or suppressed:
        reason = "complained" if current == Status.COMPLAINED else suppressed
        if name is not None:
            return Plan(Action.UPDATE, name=name)
        return Plan(Action.SUPPRESSED, reason=f"the address was {reason}")
    elif not reactivate:
        if name is not None:
            return Plan(Action.UPDATE, name=name)
        return Plan(Action.KEEP, reason=f"{current}; --reactivate would make it {row.status}")
    else:
        return Plan(Action.REACTIVATE, status=row.status, name=name)

    if status is None and name is None:
        return Plan(Action.UNCHANGED)
    return Plan(Action.UPDATE, status=status, name=name)


def import_subscribers(
    store: Store,
    rows: Iterable[Candidate | Problem],
    *,
    reactivate: bool = False,
    label: str = "",
) -> ImportReport:
    """Import rows read from a file, :data:`TRANSACTION` rows per transaction.

    Idempotent: importing the same rows again changes nothing. Rows that
    cannot be imported (``Problem``, a duplicate address in the same file)
    are reported and the rest go in. If the run is interrupted, the
    transactions already committed stay, and running it again completes it.
    """
    report = ImportReport()
    first_line: dict[str, int] = {}
    work = partial(_import_rows, reactivate=reactivate, writer=_Writer(label))
    for chunk in chunks(rows, TRANSACTION):
        candidates: list[Candidate] = []
        for item in chunk:
            if isinstance(item, Problem):
                report.problems.append(item)
                continue
            key = email_key(item.email)
            if key in first_line:
                report.problems.append(
                    Problem(item.line, f"{item.email}: duplicate of line {first_line[key]}")
                )
                continue
            first_line[key] = item.line
            candidates.append(item)
        # A signup may add one of these addresses meanwhile: then run it again.
        counts = store.retrying(partial(work, rows=candidates))
        report.added += counts.added
        report.updated += counts.updated
        report.unchanged += counts.unchanged
        report.reactivated += counts.reactivated
        report.kept += counts.kept
        report.suppressed.extend(counts.suppressed)
    return report


def _import_rows(
    tx: Transaction, rows: list[Candidate], reactivate: bool, writer: _Writer
) -> ImportReport:
    """One transaction's rows, :data:`BATCH` at a time; what they did."""
    counts = ImportReport()
    for batch in chunks(rows, BATCH):
        _import_batch(tx, batch, reactivate, writer, counts)
    return counts


def _import_batch(
    tx: Transaction,
    rows: list[Candidate],
    reactivate: bool,
    writer: _Writer,
    counts: ImportReport,
) -> None:
    keys = [email_key(row.email) for row in rows]
    existing = tx.get_many(keys)
    suppressed = tx.suppressed([row.email for row in rows])
    now = utcnow()
    new_rows: list[NewSubscriber] = []
    joined: list[JoinedEvent] = []
    events: list[NewEvent] = []

    for row, key in zip(rows, keys, strict=True):
        current = existing.get(key)
        plan = plan_import(current, row, suppressed.get(row.email), reactivate)
        if plan.action is Action.ADD:
            new_rows.append(writer.new_subscriber(row, key, now))
            joined.append(writer.added(key, row, now))
            counts.added += 1
            if row.status == Status.COMPLAINED:
                tx.suppress(row.email, SuppressionReason.COMPLAINED)
            continue
        if plan.action is Action.SUPPRESSED:
            counts.suppressed.append(Problem(row.line, f"{row.email}: skipped: {plan.reason}"))
            continue
        if current is None or plan.action is Action.UNCHANGED:
            counts.unchanged += 1
            continue
        if plan.action is Action.KEEP:
            counts.kept += 1
            continue
        if plan.name is not None:
            tx.update(current.id, name=plan.name)
            events.append(writer.event(current.id, EventKind.IMPORTED, row, now, name="changed"))
        if plan.status is not None:
            kind = _STATUS_EVENTS.get(plan.status, EventKind.REACTIVATED)
            tx.set_status(current, plan.status, None)
            change = {"from": str(current.status), "to": str(plan.status)}
            events.append(writer.event(current.id, kind, row, now, **change))
        if plan.action is Action.REACTIVATE:
            counts.reactivated += 1
        else:
            counts.updated += 1

    tx.insert_subscribers(new_rows)
    tx.insert_events(events)
    tx.insert_events(joined)


class _Writer:
    """The rows an import writes for the file ``label``: a new subscriber
    with its consent record, and the events of their history."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._source = str(Source.IMPORT)
        self._imported = str(EventKind.IMPORTED)
        self._text = _imported(label, "")
        # The detail of every "imported" event of an added row, as
        # dump_detail writes it, from a template: json.dumps per row would
        # cost more than the rest of the row's insert.
        head = dump_detail({"file": self.label})[:-1] + ', "line": '
        source = json.dumps(self._source)
        self._added_detail = {
            status: (head, f', "source": {source}, "status": {json.dumps(str(status))}}}')
            for status in Status
        }

    def new_subscriber(self, row: Candidate, key: str, now: dt.datetime) -> NewSubscriber:
        """The row :func:`~subscribers.store.rows.new_row` would make of ``row``."""
        return NewSubscriber(
            row.email,  # email
            key,  # email_key
            mailbox_key(row.email),  # mailbox_key
            row.name,  # name
            str(row.status),  # status
            self._source,  # source
            row.created_at or now,  # created_at
            now,  # updated_at
            row.confirmed_at,  # confirmed_at
            now if row.status == Status.UNSUBSCRIBED else None,  # unsubscribed_at
            row.consent_at or row.created_at,  # consent_at
            row.consent_ip,  # consent_ip
            row.consent_user_agent,  # consent_user_agent
            row.consent_text or (_imported(self.label, row.origin) if row.origin else self._text),
            row.consent_source,  # consent_source
            row.confirmed_ip,  # confirmed_ip
        )  # positional: a named tuple takes keywords at three times the cost

    def added(self, key: str, row: Candidate, now: dt.datetime) -> JoinedEvent:
        """The event of a subscriber the import added (known by email key)."""
        head, tail = self._added_detail[row.status]
        return JoinedEvent(key, self._imported, now, f"{head}{row.line}{tail}")

    def event(
        self, subscriber_id: int, kind: EventKind, row: Candidate, now: dt.datetime, **detail: Any
    ) -> NewEvent:
        """Any other event of the import, ``detail`` naming the file and line."""
        detail.update(source=self._source, file=self.label, line=row.line)
        return NewEvent(subscriber_id, str(kind), now, dump_detail(detail))


def _imported(label: str, origin: str) -> str:
    """The consent record of an imported reader: the file, and where they
    signed up if it says."""
    text = f"Imported from {label}" if label else "Imported"
    return f"{text} ({origin})" if origin else text


_STATUS_EVENTS = {
    Status.UNSUBSCRIBED: EventKind.UNSUBSCRIBED,
    Status.BOUNCED: EventKind.BOUNCED,
    Status.COMPLAINED: EventKind.COMPLAINED,
}
