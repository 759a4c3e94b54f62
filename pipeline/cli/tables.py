"""How the subscriber commands print: Rich tables on standard output, warnings on standard error.

    publish subscribers import ──> print_import_report: FILE:LINE problems, the totals
    publish subscribers list   ──> its table, printed on :func:`console`
    publish subscribers show   ──> print_subscriber: the facts, consent and history
    publish subscribers stats  ──> print_stats: counts, the last days, health warnings

Everything shown is stored text that a stranger may have written (a name,
a user agent, a provider's error): it is printed without Rich markup and
with control characters written out (:func:`~pipeline.cli.app.printable`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.app import echo, is_tty, plural, printable, when
from subscribers.models import EventKind, Status

if TYPE_CHECKING:
    from rich.console import Console

    from subscribers.models import Event, ImportReport, Stats, Subscriber


def console() -> Console:
    from rich.console import Console

    # Piped output is not cut to 80 columns. No markup: what it prints is
    # stored text, and "[/]" or "[link=...]" in a name is only text.
    return Console(highlight=False, markup=False, emoji=False, width=None if is_tty() else 200)


def print_import_report(file: Path, report: ImportReport) -> None:
    """What an import did, on standard error: the columns it did not read,
    each row it refused as ``FILE:LINE: reason``, then the totals."""
    if report.ignored_columns:
        names = ", ".join(f'"{name}"' for name in report.ignored_columns)
        echo(f"{file}: ignored columns: {names}", err=True)
    for problem in report.problems:
        echo(f"{file}:{problem.line}: {problem.reason}", err=True)
    for skipped in report.suppressed:
        echo(f"{file}:{skipped.line}: {skipped.reason}", err=True)
    parts = [
        f"{report.added} added",
        f"{report.updated} updated",
        f"{report.unchanged} unchanged",
        f"{report.reactivated} reactivated",
    ]
    if report.kept:
        parts.append(f"{report.kept} kept as they were (see --reactivate)")
    if report.suppressed:
        parts.append(f"{len(report.suppressed)} skipped (erased or complained)")
    if report.problems:
        parts.append(f"{len(report.problems)} failed")
    echo(f"{file}: {plural(report.rows, 'row')}: {', '.join(parts)}", err=True)


def print_subscriber(subscriber: Subscriber, events: list[Event]) -> None:
    import json

    from rich.table import Table

    out = console()
    consent = subscriber.consent
    facts = Table(box=None, show_header=False, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("email", printable(subscriber.email))
    facts.add_row("name", printable(subscriber.name or "-"))
    facts.add_row("status", str(subscriber.status))
    facts.add_row("source", str(subscriber.source))
    facts.add_row("joined", when(subscriber.created_at))
    facts.add_row("confirmation sent", printable(_confirmation_sent(subscriber, events)))
    facts.add_row("unsubscribed", when(subscriber.unsubscribed_at))
    facts.add_row("consent given", printable(_where(consent.at, consent.ip, consent.user_agent)))
    facts.add_row("consent wording", printable(consent.text or "-"))
    facts.add_row("signed up on", printable(consent.source or "-"))
    facts.add_row(
        "consent confirmed",
        printable(_where(consent.confirmed_at, consent.confirmed_ip, consent.confirmed_user_agent)),
    )
    out.print(facts)
    history = Table("when", "event", "detail", title="history", box=None, pad_edge=False)
    for event in events:
        detail = ", ".join(
            f"{key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in event.detail.items()
        )
        history.add_row(when(event.at), event.kind, printable(detail))
    out.print()
    out.print(history)


def _confirmation_sent(subscriber: Subscriber, events: list[Event]) -> str:
    """When the confirmation went out, or that the mailer gave up on it."""
    mailing = [
        e for e in events if e.kind == EventKind.SUBSCRIBED or e.kind.startswith("confirmation_")
    ]
    if subscriber.status == Status.PENDING and mailing:
        last = mailing[-1]
        if last.kind == EventKind.CONFIRMATION_GIVEN_UP:
            return (
                f"never: gave up {when(last.at)} after {last.detail.get('attempts')} "
                f"attempts ({last.detail.get('error')})"
            )
    return when(subscriber.confirmation_sent_at)


def _where(at: dt.datetime | None, ip: str | None, user_agent: str | None) -> str:
    if at is None:
        return "-"
    text = when(at)
    if ip:
        text += f" from {ip}"
    if user_agent:
        text += f" ({user_agent})"
    return text


def print_stats(figures: Stats) -> None:
    from rich.table import Table

    from subscribers.health import health

    out = console()
    table = Table("status", "subscribers", box=None, pad_edge=False)
    for status, count in figures.by_status.items():
        table.add_row(status, str(count))
    table.add_row("total", str(figures.total), style="bold")
    out.print(table)
    recent = Table(f"last {figures.days} days", "", box=None, pad_edge=False)
    recent.add_row("signups and imports", str(figures.subscribed))
    recent.add_row("confirmed", str(figures.confirmed))
    recent.add_row("unsubscribed", str(figures.unsubscribed))
    recent.add_row("messages sent", str(figures.sent))
    if figures.delivered:
        recent.add_row("delivered (reported by SES)", str(figures.delivered))
    recent.add_row("bounced (permanently)", _rate(figures.bounced, figures.bounce_rate))
    recent.add_row("complained", _rate(figures.complained, figures.complaint_rate))
    recent.add_row("suppressed addresses (all time)", str(figures.suppressed))
    out.print()
    out.print(recent)
    for level, message in health(figures):
        echo(f"{level}: {message}", err=True)


def _rate(count: int, rate: float | None) -> str:
    return str(count) if rate is None else f"{count} ({rate:.2%})"
