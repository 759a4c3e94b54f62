"""The rules for importing subscribers from another list.

Imports never raise a subscriber's status (pending or left to active)
unless asked to (``reactivate``), never for a suppressed or complained
address, and always honour a status that means "do not mail" (a reader who
unsubscribed elsewhere stays unsubscribed here). Importing the same rows
again changes nothing.

    plan_import(...)          what one row does to the list: a pure function
    import_subscribers(...)   rows into the store, a batch per transaction
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

from subscribers.models import (
    Candidate,
    Consent,
    EventKind,
    ImportReport,
    Problem,
    Source,
    Status,
    Subscriber,
    SuppressionReason,
    dump_detail,
    email_key,
    utcnow,
)
from subscribers.store import Store, Transaction
from subscribers.store.rows import BATCH, chunks, new_row


class Action(Enum):
    ADD = "add"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REACTIVATE = "reactivate"
    KEEP = "keep"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Plan:
    """What importing one row does to the list."""

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
    """Import rows read from a file, a batch per transaction.

    Idempotent: importing the same rows again changes nothing. Rows that
    cannot be imported (``Problem``, a duplicate address in the same file)
    are reported and the rest go in. If the run is interrupted, the batches
    already committed stay, and running it again completes it.
    """
    report = ImportReport()
    first_line: dict[str, int] = {}
    for batch in chunks(rows, BATCH):
        candidates: list[Candidate] = []
        for item in batch:
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
        counts = store.retrying(
            partial(_import_batch, rows=candidates, reactivate=reactivate, label=label)
        )
        report.added += counts.added
        report.updated += counts.updated
        report.unchanged += counts.unchanged
        report.reactivated += counts.reactivated
        report.kept += counts.kept
        report.suppressed.extend(counts.suppressed)
    return report


def _import_batch(
    tx: Transaction, rows: list[Candidate], reactivate: bool, label: str
) -> ImportReport:
    counts = ImportReport()
    keys = [email_key(row.email) for row in rows]
    existing = tx.get_many(keys)
    suppressed = tx.suppressed([row.email for row in rows])
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    new_lines: dict[str, Candidate] = {}
    events: list[dict[str, Any]] = []

    def event(subscriber_id: int, kind: EventKind, row: Candidate, **detail: Any) -> None:
        detail.update(source=str(Source.IMPORT), file=label, line=row.line)
        events.append(
            {
                "subscriber_id": subscriber_id,
                "kind": str(kind),
                "at": now,
                "detail": dump_detail(detail),
            }
        )

    for row, key in zip(rows, keys, strict=True):
        current = existing.get(key)
        plan = plan_import(current, row, suppressed.get(row.email), reactivate)
        if plan.action is Action.ADD:
            consent = Consent(
                at=row.consent_at or row.created_at,
                ip=row.consent_ip,
                user_agent=row.consent_user_agent,
                text=row.consent_text or _imported(label, row.origin),
                confirmed_at=row.confirmed_at,
                confirmed_ip=row.confirmed_ip,
                source=row.consent_source,
            )
            new_rows.append(
                new_row(row.email, row.name, row.status, Source.IMPORT, consent, row.created_at)
            )
            new_lines[key] = row
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
            event(current.id, EventKind.IMPORTED, row, name="changed")
        if plan.status is not None:
            kind = _STATUS_EVENTS.get(plan.status, EventKind.REACTIVATED)
            tx.set_status(current, plan.status, None)
            event(current.id, kind, row, **{"from": str(current.status), "to": str(plan.status)})
        if plan.action is Action.REACTIVATE:
            counts.reactivated += 1
        else:
            counts.updated += 1

    ids = tx.insert_many(new_rows)
    for key, row in new_lines.items():
        event(ids[key], EventKind.IMPORTED, row, status=str(row.status))
    tx.add_events(events)
    return counts


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
