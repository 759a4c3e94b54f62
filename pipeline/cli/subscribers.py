"""The list: `publish subscribers ...` and `publish db upgrade`.

`publish serve`, the service readers sign up through, is in ``serve.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.app import app, echo, plural, printable, settings, when
from pipeline.cli.tables import console, print_import_report, print_stats, print_subscriber
from subscribers.models import Status

if TYPE_CHECKING:
    from subscribers.store import Store

subscribers_app = typer.Typer(
    name="subscribers",
    help="The subscriber list: add, import, export, list, show, remove, erase, stats.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
db_app = typer.Typer(
    name="db",
    help="The subscriber database.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(subscribers_app)
app.add_typer(db_app)

StatusOption = Annotated[
    Status | None,
    typer.Option("--status", help="Only subscribers with this status.", case_sensitive=False),
]
EmailArgument = Annotated[str, typer.Argument(help="The subscriber's email address.")]


@contextmanager
def _store(ctx: typer.Context) -> Iterator[Store]:
    from subscribers.store import Store

    config = settings(ctx)
    with Store.open(config.database_url, config.root) as store:
        yield store


@subscribers_app.command()
def add(
    ctx: typer.Context,
    email: EmailArgument,
    name: Annotated[str, typer.Option("--name", help="Their name, as greeted.")] = "",
    status: Annotated[
        Status, typer.Option("--status", help="Their status.", case_sensitive=False)
    ] = Status.ACTIVE,
) -> None:
    """Add one subscriber, who asked to be added (recorded as their consent).

    Example: publish subscribers add reader@example.com --name "Sam Reader"
    """
    from subscribers.models import Consent, Source, utcnow
    from subscribers.text import clean_name

    with _store(ctx) as store:
        subscriber = store.add(
            email,
            name=clean_name(name),
            status=status,
            source=Source.CLI,
            consent=Consent(at=utcnow(), text="Added by the editor at the reader's request"),
        )
    echo(f"added {subscriber.email} ({subscriber.status})")


@subscribers_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A CSV file with an email column.", dir_okay=False)],
    reactivate: Annotated[
        bool,
        typer.Option(
            "--reactivate",
            help="Make pending, unsubscribed and bounced addresses active if the file says "
            "so (never complained or erased ones).",
        ),
    ] = False,
    delimiter: Annotated[
        str | None,
        typer.Option(
            "--delimiter",
            help="The column separator: , ; | or tab. Default: found in the first lines.",
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            help="The file's text encoding, such as cp1252 or latin-1. Default: UTF-8 "
            "(UTF-16 if it starts with a byte order mark).",
        ),
    ] = None,
) -> None:
    """Import subscribers from CSV exports: ours, Mailchimp, Substack, Buttondown, listmonk, Ghost.

    Commas, semicolons, tabs or bars between columns are all found. Columns
    it does not read are named once; a bad row (an unclosed quote, a huge
    field, a bad address...) is reported as FILE:LINE: reason and the rest
    are imported; the exit status is 1 if any row failed. Importing again
    changes nothing.

    Example: publish subscribers import subscribers/sample.csv
    """
    from subscribers.csvio import import_csv

    with _store(ctx) as store:
        report = import_csv(
            store, file, reactivate=reactivate, encoding=encoding, delimiter=delimiter
        )
    print_import_report(file, report)
    if not report.ok:
        raise typer.Exit(1)


@subscribers_app.command()
def export(
    ctx: typer.Context,
    status: StatusOption = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write to this file. Default: standard output."),
    ] = None,
) -> None:
    """Export subscribers as CSV, with their consent records; streams any size of list.

    Example: publish subscribers export --status active -o subscribers.csv
    """
    from pipeline.erasure import remember_export
    from subscribers.csvio import export_csv, export_file

    with _store(ctx) as store:
        if output is None:
            count = export_csv(store, sys.stdout, status)
        else:
            count = export_file(store, output, status)
            remember_export(settings(ctx).root, output)
    echo(f"exported {plural(count, 'subscriber')}" + (f" to {output}" if output else ""), err=True)


@subscribers_app.command("list")
def list_(
    ctx: typer.Context,
    status: StatusOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show at most this many.")
    ] = None,
) -> None:
    """List subscribers in the order they joined.

    Example: publish subscribers list --status active
    """
    from rich.table import Table

    with _store(ctx) as store:
        found = store.list(status, limit)
    table = Table("email", "name", "status", "source", "joined", box=None, pad_edge=False)
    for subscriber in found:
        table.add_row(
            printable(subscriber.email),
            printable(subscriber.name),
            subscriber.status,
            subscriber.source,
            when(subscriber.created_at),
        )
    # Addresses are never cut short.
    table.columns[0].min_width = max((len(subscriber.email) for subscriber in found), default=0)
    console().print(table)
    echo(plural(len(found), "subscriber"), err=True)


@subscribers_app.command()
def show(ctx: typer.Context, email: EmailArgument) -> None:
    """Show one subscriber: status, consent record and history.

    Example: publish subscribers show reader@example.com
    """
    with _store(ctx) as store:
        subscriber = store.find(email)
        events = store.history(subscriber.id)
    print_subscriber(subscriber, events)


@subscribers_app.command()
def remove(ctx: typer.Context, email: EmailArgument) -> None:
    """Unsubscribe someone (their record and history stay).

    Example: publish subscribers remove reader@example.com
    """
    with _store(ctx) as store:
        subscriber = store.unsubscribe(store.find(email).id, {"via": "cli"})
    assert subscriber is not None
    echo(f"{subscriber.email} is {subscriber.status}")


@subscribers_app.command()
def erase(
    ctx: typer.Context,
    email: EmailArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase someone for good (GDPR), keeping only a hash so they are never mailed again.

    Their record, consent and history are deleted; their address and name
    are scrubbed from past sends, from the outbox, from the exports written
    with -o, and from the database's files. Only a new subscription they
    confirm themselves brings the address back. An export printed to the
    terminal or moved elsewhere is out of reach: delete it yourself.

    Example: publish subscribers erase reader@example.com --yes
    """
    from pipeline.erasure import erase_reader
    from pipeline.errors import PublishError

    if not yes:
        if not sys.stdin.isatty():
            raise PublishError("erase cannot be undone: add --yes to confirm")
        typer.confirm(f"Erase {email} and its history for good?", abort=True)
    with _store(ctx) as store:
        done = erase_reader(settings(ctx), store, email)
    address = printable(email.strip())
    files = (
        f"removed from {plural(done.outbox_files, 'outbox file')} and "
        f"{plural(done.exports, 'export')}"
    )
    if done.recovery_files:
        files += f", scrubbed from {plural(done.recovery_files, 'recovery file')}"
    if done.found:
        echo(f"erased {address}; {files}; a salted hash is kept so it is never mailed again")
    else:
        echo(f"{address} was not on the list; {files}; a salted hash is kept so it is never mailed")
    if not done.database_clean:
        raise PublishError(
            "the database's write-ahead log still holds the erased rows: another process "
            "(publish serve?) has it open; run the same erase again once it has stopped"
        )


@subscribers_app.command()
def stats(ctx: typer.Context) -> None:
    """Count subscribers by status, and show the last 30 days' bounce and complaint rates.

    Example: publish subscribers stats
    """
    with _store(ctx) as store:
        figures = store.stats()
    print_stats(figures)


# ---------------------------------------------------------------------------
# publish db upgrade
# ---------------------------------------------------------------------------


@db_app.command()
def upgrade(ctx: typer.Context) -> None:
    """Migrate the subscriber database to the current schema (also done on first use).

    Example: publish db upgrade
    """
    from subscribers.db import database_url, redact_url, upgrade

    config = settings(ctx)
    revision = upgrade(config.database_url, config.root)
    echo(f"{redact_url(database_url(config.database_url, config.root))} is at revision {revision}")
