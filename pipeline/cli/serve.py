"""`publish serve`: the web service, and its confirmation mailer in a process of its own.

    publish serve ──> uvicorn (this process): the pages, /ses/events, the built site
                  └─> _Supervised ──spawn──> _run_mailer: sends queued confirmations
                                   (started again should it die; never after a stop)

The mailer is a second process so that building and sending mail never
slows the answers. Stopping is one path whatever stops the service (Ctrl-C,
SIGTERM, uvicorn failing to start): the signal handler marks the supervisor
stopping, uvicorn finishes its requests, then the supervisor closes the pipe
the mailer watches and waits for it (killing it after 30 s). A mailer whose
parent dies without stopping it sees the pipe close (and on Linux gets
SIGTERM from the kernel) and stops too, so no process outlives the service.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.app import app, echo, plural, settings, shown

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from types import FrameType

    import uvicorn
    from fastapi import FastAPI

    from pipeline.config import Settings
    from pipeline.transports import Transport
    from subscribers.mail_template import OutgoingMessage
    from subscribers.webconfig import WebConfig

log = logging.getLogger(__name__)


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

    On a loopback address it first builds the site into preview/site for its
    own address (http://HOST:PORT) and serves that, and the links in the
    mail it sends lead there too, so the demo can be clicked through; on any
    other address it serves public/ as `publish site` built it, for
    newsletter.site_url.

    Example: publish serve --host 127.0.0.1 --port 8000
    """
    from pipeline.demo import is_demo
    from pipeline.mailcheck import require_mail_templates
    from pipeline.reader_pages import page_settings, refuse_broken_pages
    from subscribers.tokens import resolve_secret

    config = settings(ctx, web_host=host, web_port=port)
    secret = resolve_secret(
        config.token_secret, config.root / ".secret", config.database_url, config.web_host
    )
    web = _web_config(config, secret)  # every secret checked before any work
    refuse_broken_pages(config)  # nothing is served from a page in error
    require_mail_templates(config)  # nor mailed from a confirm or welcome in error
    if is_demo(config):
        config = _demo(config)
        web = dataclasses.replace(web, site_url=config.site_url, **page_settings(config))
    run_service(config, web)


def _demo(config: Settings) -> Settings:
    """The local demo's settings, with its site built for them
    (:mod:`pipeline.demo`). A site that cannot be built (an issue or a
    template in error) is a warning: the signup pages are served all the
    same, beside what the folder holds from the last build."""
    from pipeline.demo import build_demo_site, demo_settings
    from pipeline.errors import PublishError

    demo = demo_settings(config)
    try:
        report = build_demo_site(demo)
    except PublishError as exc:
        echo(f"warning: the demo site was not built: {exc}", err=True)
        return demo
    for warning in report.warnings:
        echo(f"warning: {warning}", err=True)
    echo(
        f"{config.name}: the demo site ({plural(len(report.issues), 'issue')}) "
        f"for {demo.site_url} in {shown(report.public_dir)}",
        err=True,
    )
    return demo


def run_service(config: Settings, web: WebConfig) -> None:
    """Serve the web service on the settings' host and port until Ctrl-C or
    SIGTERM, with a confirmation mailer in a process of its own; both are
    stopped before this returns."""
    import multiprocessing
    import signal

    from pipeline.service_mail import service_mail
    from subscribers.accesslog import install
    from subscribers.db import connect
    from subscribers.web import create_app

    engine = connect(config.database_url, config.root)
    transport, send_mail = _mail(config)
    mail = service_mail(config, engine)
    service = create_app(
        engine, web, send_mail, static_dir=config.public_dir, mailer=False, mail=mail
    )
    install(log_ips=config.log_ips)
    mailer = _Supervised(multiprocessing.get_context("spawn"), (config.root, web))
    server = _server(service, config, web, mailer)
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


def _server(
    service: FastAPI, config: Settings, web: WebConfig, mailer: _Supervised
) -> uvicorn.Server:
    """uvicorn serving ``service``; a signal it handles also stops ``mailer``
    from being started again."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            """SIGINT or SIGTERM: the mailer is started no more from now on.
            uvicorn calls this while it serves; it is our handler before and
            after, so that a signal at any moment stops the service."""
            mailer.stopping = True
            super().handle_exit(sig, frame)

    return Server(
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


def _web_config(config: Settings, secret: str) -> WebConfig:
    from pipeline.reader_pages import page_settings
    from subscribers.models import Limit
    from subscribers.tokens import resolve_previous_secret
    from subscribers.webconfig import WebConfig

    return WebConfig(
        name=config.name,
        site_url=config.site_url,
        sender=str(config.sender),
        reply_to=str(config.reply_to),
        postal_address=config.postal_address,
        secret=secret,
        previous_secret=resolve_previous_secret(config.token_secret_previous),
        consent_text=config.consent_text,
        blog_url=config.blog_url,
        unsubscribe_domain=config.unsubscribe_domain,
        sns_topic_arns=config.sns_topic_arns,
        transient_bounce_limit=config.transient_bounce_limit,
        tracking=config.tracking,
        per_domain=Limit(config.confirmations_per_domain, 60),
        trusted_proxies=config.trusted_proxies,
        **page_settings(config),
    )


def _mail(config: Settings) -> tuple[Transport, Callable[[OutgoingMessage], object]]:
    """The transport of confirm and welcome mail (never tracked), and its send."""
    from pipeline.transports import open_transport

    transport = open_transport(config, service=True)
    return transport, transport.send


def _run_mailer(root: Path, web: WebConfig, parent_alive: Any, parent: int) -> None:
    """The confirmation mailer's process: `publish serve` starts it, and it
    lives as long as its parent does. It stops, after the messages in hand,
    when ``parent_alive`` (the reading end of a pipe only the parent can
    write to) closes: the parent closed it to stop us, or died. On Linux it
    is also sent SIGTERM when the parent dies."""
    from pipeline.config import load_settings
    from pipeline.service_mail import service_mail
    from subscribers.db import connect
    from subscribers.mailer import ConfirmationMailer

    stopped = _stopped_with_parent(parent)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     mailer: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _watch_parent(parent_alive, stopped)
    if os.getppid() != parent:  # it died before we could watch it
        return
    config = load_settings(root)
    engine = connect(config.database_url, config.root)
    transport, send_mail = _mail(config)
    service = web.subscriptions(engine, send_mail, service_mail(config, engine, web.site_url))
    mailer = ConfirmationMailer(
        service, poll=0.2, lease=dt.timedelta(seconds=config.confirmation_lease)
    )
    try:
        mailer.run(stopped=stopped.is_set)
    finally:
        transport.close()
        engine.dispose()


def _stopped_with_parent(parent: int) -> threading.Event:
    """An event set once the parent (pid ``parent``) is gone. Ctrl-C and a
    service manager's SIGTERM reach the parent too, which stops us: we stop
    on our own only once it is gone."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopped = threading.Event()

    def on_sigterm(_signum: int, _frame: Any) -> None:
        if os.getppid() != parent:
            stopped.set()
        else:  # also sent when the thread that started us ends (PR_SET_PDEATHSIG)
            log.info("SIGTERM: publish serve (pid %d) is running and will stop the mailer", parent)

    signal.signal(signal.SIGTERM, on_sigterm)
    _signal_when_parent_dies(signal.SIGTERM)
    return stopped


def _watch_parent(parent_alive: Any, stopped: threading.Event) -> None:
    """Set ``stopped`` when the pipe from the parent closes, from a thread."""
    import contextlib
    import threading

    def watch_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            parent_alive.recv_bytes()  # the parent never writes: this waits for the end
        stopped.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()


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
                    log.warning(
                        "the confirmation mailer stopped (exit %s) while publish serve "
                        "stops; not starting it again",
                        process.exitcode,
                    )
                    return
                log.error(
                    "the confirmation mailer stopped (exit %s); starting it again",
                    process.exitcode,
                )
                try:
                    self._launch()
                except Exception:  # no memory for a process, say: try again in a second
                    log.exception("could not start the mailer")

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
                log.error("the confirmation mailer did not stop within %d s; killed", timeout)
                process.kill()
                process.join()
