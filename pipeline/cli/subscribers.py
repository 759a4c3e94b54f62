"""The list and its service: `publish subscribers ...`, `publish db upgrade`,
`publish serve`."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.app import app, echo, is_tty, plural, printable, settings, when
from subscribers.models import Status

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import EmailMessage
    from types import FrameType

    from rich.console import Console

    from pipeline.config import Settings
    from pipeline.transports import Transport
    from subscribers.models import Event, Stats, Subscriber
    from subscribers.store import Store
    from subscribers.web import WebConfig

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

# Thresholds that mailbox providers and Amazon SES hold bulk senders to, and
# the rates from which `subscribers stats` warns that one is near.
BOUNCE_LIMIT = 0.05
BOUNCE_NEAR = 0.02
COMPLAINT_LIMIT = 0.001
COMPLAINT_NEAR = 0.0008
COMPLAINT_NEVER = 0.003


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
    from subscribers.models import Consent, Source, clean_name, utcnow

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
    _console().print(table)
    echo(plural(len(found), "subscriber"), err=True)


@subscribers_app.command()
def show(ctx: typer.Context, email: EmailArgument) -> None:
    """Show one subscriber: status, consent record and history.

    Example: publish subscribers show reader@example.com
    """
    with _store(ctx) as store:
        subscriber = store.find(email)
        events = store.history(subscriber.id)
    _print_subscriber(subscriber, events)


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
    _print_stats(figures)


# ---------------------------------------------------------------------------
# publish db upgrade, publish serve
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


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on. Default: web.host.")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on. Default: web.port.")
    ] = None,
) -> None:
    """Run the web service: subscribe, confirm and unsubscribe pages, and the built site.

    Confirmation messages go out from a second process, so that building and
    sending mail never slows the answers; Ctrl-C or SIGTERM stops both, and
    the mailer stops by itself should the server die. SES bounces and
    complaints can be posted to /ses/events by an SNS subscription to a topic
    named in events.sns_topic_arns (signatures checked). X-Forwarded-For is
    believed only from web.trusted_proxies (loopback by default). Needs
    NEWSLETTER_TOKEN_SECRET unless it runs the embedded demo (SQLite on a
    loopback address), which keeps a secret of its own in .secret.

    Example: publish serve --host 127.0.0.1 --port 8000
    """
    from subscribers.tokens import resolve_secret

    config = settings(ctx, web_host=host, web_port=port)
    secret = resolve_secret(
        config.token_secret, config.root / ".secret", config.database_url, config.web_host
    )
    run_service(config, _web_config(config, secret))


def run_service(config: Settings, web: WebConfig) -> None:
    """Serve the web service on the settings' host and port until Ctrl-C or
    SIGTERM, with a confirmation mailer in a process of its own; both are
    stopped before this returns."""
    import multiprocessing
    import signal

    import uvicorn

    from subscribers.accesslog import install
    from subscribers.db import connect
    from subscribers.web import create_app

    engine = connect(config.database_url, config.root)
    transport, send_mail = _mail(config)
    service = create_app(engine, web, send_mail, static_dir=config.public_dir, mailer=False)
    install(log_ips=config.log_ips)
    mailer = _Supervised(multiprocessing.get_context("spawn"), (config.root, web))

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            """SIGINT or SIGTERM: the mailer is started no more from now on.
            uvicorn calls this while it serves; it is our handler before and
            after, so that a signal at any moment stops the service."""
            mailer.stopping = True
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(
            service,
            host=config.web_host,
            port=config.web_port,
            server_header=False,
            log_level="info",
            # The client is the right-most X-Forwarded-For address that is
            # not one of these (uvicorn's rule); the app never reads the
            # header itself. FORWARDED_ALLOW_IPS is not consulted.
            proxy_headers=True,
            forwarded_allow_ips=list(web.trusted_proxies),
        )
    )
    echo(
        f"{config.name}: http://{config.web_host}:{config.web_port}/subscribe "
        f"(mail by {transport.name}; Ctrl-C stops)",
        err=True,
    )
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in stops}
    try:
        mailer.start()
        server.run()
    finally:
        mailer.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        transport.close()
        engine.dispose()
    if not server.started and not server.should_exit:
        raise typer.Exit(3)  # uvicorn has said why, as uvicorn.run does
    echo(f"{config.name}: stopped", err=True)


def _web_config(config: Settings, secret: str) -> WebConfig:
    from subscribers.models import Limit
    from subscribers.tokens import resolve_previous_secret
    from subscribers.web import WebConfig

    return WebConfig(
        name=config.name,
        site_url=config.site_url,
        sender=str(config.sender),
        reply_to=str(config.reply_to),
        postal_address=config.postal_address,
        secret=secret,
        previous_secret=resolve_previous_secret(config.token_secret_previous),
        consent_text=config.consent_text,
        sns_topic_arns=config.sns_topic_arns,
        transient_bounce_limit=config.transient_bounce_limit,
        per_domain=Limit(config.confirmations_per_domain, 60),
        trusted_proxies=config.trusted_proxies,
    )


def _mail(config: Settings) -> tuple[Transport, Callable[[EmailMessage], None]]:
    from pipeline.transports import open_transport
    from pipeline.transports.base import OutgoingMessage

    transport = open_transport(config)

    def send_mail(message: EmailMessage) -> None:
        transport.send(OutgoingMessage.from_email_message(message))

    return transport, send_mail


def _run_mailer(root: Path, web: WebConfig, parent_alive: Any, parent: int) -> None:
    """The confirmation mailer's process: `publish serve` starts it, and it
    lives as long as its parent does. It stops, after the messages in hand,
    when ``parent_alive`` (the reading end of a pipe only the parent can
    write to) closes: the parent closed it to stop us, or died. On Linux it
    is also sent SIGTERM when the parent dies."""
    import contextlib
    import logging
    import signal
    import threading

    from pipeline.config import load_settings
    from subscribers.db import connect
    from subscribers.service import ConfirmationMailer

    log = logging.getLogger(__name__)
    # Ctrl-C and a service manager's SIGTERM reach the parent too, which
    # stops us: we stop on our own only once it is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopped = threading.Event()

    def on_sigterm(_signum: int, _frame: Any) -> None:
        if os.getppid() != parent:
            stopped.set()
        else:  # also sent when the thread that started us ends (PR_SET_PDEATHSIG)
            log.info("SIGTERM: publish serve (pid %d) is running and will stop the mailer", parent)

    signal.signal(signal.SIGTERM, on_sigterm)
    _signal_when_parent_dies(signal.SIGTERM)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     mailer: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    def watch_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            parent_alive.recv_bytes()  # the parent never writes: this waits for the end
        stopped.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before we could watch it
        return
    config = load_settings(root)
    engine = connect(config.database_url, config.root)
    transport, send_mail = _mail(config)
    service = web.subscriptions(engine, send_mail)
    mailer = ConfirmationMailer(
        service, poll=0.2, lease=dt.timedelta(seconds=config.confirmation_lease)
    )
    try:
        mailer.run(stopped=stopped.is_set)
    finally:
        transport.close()
        engine.dispose()


def _signal_when_parent_dies(signum: int) -> None:
    """On Linux, have the kernel send ``signum`` to this process when its
    parent dies (prctl PR_SET_PDEATHSIG); elsewhere nothing, and the pipe
    from the parent is what tells."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signum, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class _Supervised:
    """The mailer process: started again if it dies, until the service
    stops. Once ``stopping`` is set (by :meth:`stop`, or at once by the
    signal handler) it is never started again."""

    def __init__(self, spawn: Any, args: tuple[Any, ...]) -> None:
        import threading

        self.spawn = spawn
        self.args = args
        self.process: Any = None
        self.stopping = False
        """Plain data, so that a signal handler may set it."""
        self._parent_alive: Any = None
        self._launched = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="mailer-watch", daemon=True)

    def start(self) -> None:
        with self._lock:
            if self.stopping:
                return
            self._launch()
        self.watcher.start()

    def _launch(self) -> None:
        """Start a mailer, with a pipe that closes when we stop it or die.
        Called with the lock held."""
        import time

        self._launched = time.monotonic()
        reader, writer = self.spawn.Pipe(duplex=False)
        try:
            process = self.spawn.Process(
                target=_run_mailer, args=(*self.args, reader, os.getpid()), name="publish-mailer"
            )
            process.start()
        except BaseException:
            writer.close()
            raise
        finally:
            reader.close()  # the mailer has its own copy
        if self._parent_alive is not None:
            self._parent_alive.close()
        self.process, self._parent_alive = process, writer

    def _watch(self) -> None:
        import logging
        import time

        while not self._stopped.is_set():
            process = self.process
            process.join(0.5)
            if process.is_alive():
                continue
            if self._stopped.is_set():  # stop() asked it to, and waits for it
                return
            # At most one start a second, should it die at once every time.
            self._stopped.wait(max(0.0, self._launched + 1 - time.monotonic()))
            with self._lock:
                if self.stopping:
                    logging.getLogger(__name__).warning(
                        "the confirmation mailer stopped (exit %s) while publish serve "
                        "stops; not starting it again",
                        process.exitcode,
                    )
                    return
                logging.getLogger(__name__).error(
                    "the confirmation mailer stopped (exit %s); starting it again",
                    process.exitcode,
                )
                try:
                    self._launch()
                except Exception:  # no memory for a process, say: try again in a second
                    logging.getLogger(__name__).exception("could not start the mailer")

    def stop(self, timeout: float = 30) -> None:
        """Have the mailer finish the messages in hand and exit; kill it
        after ``timeout`` seconds (its claims come back when their lease runs
        out). Starts nothing again."""
        self.stopping = True
        self._stopped.set()
        with self._lock:  # a start under way is finished
            process, parent_alive = self.process, self._parent_alive
        if parent_alive is not None:
            parent_alive.close()
        if self.watcher.is_alive():
            self.watcher.join()
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                import logging

                logging.getLogger(__name__).error(
                    "the confirmation mailer did not stop within %d s; killed", timeout
                )
                process.kill()
                process.join()


# ---------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------


def _console() -> Console:
    from rich.console import Console

    # Piped output is not cut to 80 columns. No markup: what it prints is
    # stored text, and "[/]" or "[link=...]" in a name is only text.
    return Console(highlight=False, markup=False, emoji=False, width=None if is_tty() else 200)


def _print_subscriber(subscriber: Subscriber, events: list[Event]) -> None:
    import json

    from rich.table import Table

    console = _console()
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
    facts.add_row(
        "consent confirmed",
        printable(_where(consent.confirmed_at, consent.confirmed_ip, consent.confirmed_user_agent)),
    )
    console.print(facts)
    history = Table("when", "event", "detail", title="history", box=None, pad_edge=False)
    for event in events:
        detail = ", ".join(
            f"{key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in event.detail.items()
        )
        history.add_row(when(event.at), event.kind, printable(detail))
    console.print()
    console.print(history)


def _confirmation_sent(subscriber: Subscriber, events: list[Event]) -> str:
    """When the confirmation went out, or that the mailer gave up on it."""
    from subscribers.models import EventKind

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


def _print_stats(figures: Stats) -> None:
    from rich.table import Table

    console = _console()
    table = Table("status", "subscribers", box=None, pad_edge=False)
    for status, count in figures.by_status.items():
        table.add_row(status, str(count))
    table.add_row("total", str(figures.total), style="bold")
    console.print(table)
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
    console.print()
    console.print(recent)
    for level, message in health(figures):
        echo(f"{level}: {message}", err=True)


def _rate(count: int, rate: float | None) -> str:
    return str(count) if rate is None else f"{count} ({rate:.2%})"


def health(figures: Stats) -> list[tuple[str, str]]:
    """``(level, message)`` when the last days' bounce or complaint rate nears
    or passes what SES and mailbox providers tolerate: complaints under
    0.1% and never 0.3%, bounces under 5%. Level ``error`` past the hard
    limits, ``warning`` near them."""
    found: list[tuple[str, str]] = []
    bounces = figures.bounce_rate
    if bounces is not None and bounces >= BOUNCE_LIMIT:
        found.append((
            "error",
            f"bounce rate {bounces:.2%} is over the {BOUNCE_LIMIT:.0%} at which SES puts an "
            "account under review; clean the list before the next issue",
        ))
    elif bounces is not None and bounces >= BOUNCE_NEAR:
        found.append((
            "warning",
            f"bounce rate {bounces:.2%} is near the {BOUNCE_LIMIT:.0%} at which SES reviews "
            "an account",
        ))
    complaints = figures.complaint_rate
    if complaints is not None and complaints >= COMPLAINT_NEVER:
        found.append((
            "error",
            f"complaint rate {complaints:.2%} is over {COMPLAINT_NEVER:.1%}, at which mailbox "
            "providers block senders and SES may pause sending",
        ))
    elif complaints is not None and complaints >= COMPLAINT_NEAR:
        where = "over" if complaints >= COMPLAINT_LIMIT else "near"
        found.append((
            "warning",
            f"complaint rate {complaints:.2%} is {where} {COMPLAINT_LIMIT:.1%}; mailbox "
            f"providers expect under {COMPLAINT_LIMIT:.1%} and block senders at "
            f"{COMPLAINT_NEVER:.1%}",
        ))
    return found
