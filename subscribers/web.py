"""The signup web service: :func:`create_app` wires its parts into one FastAPI app.

    create_app(engine, config, send_mail)
      ├─ app.state.web = WebState     what the handlers share (routes/deps.py)
      ├─ routers                      signup, confirm, unsubscribe, ses, site (routes/)
      ├─ the built site               every path the routes do not answer
      ├─ error pages                  routes/errors.py, worded in pages.py
      └─ Guard                        security headers, body limits, last-resort page
                                      (middleware.py)

Against subscription bombing: signups per client network (an IPv4
address, an IPv6 /64) are limited, and the confirmation mailer limits its
messages per mailbox and per domain (``service.py``); the counters are in the
database, so every process shares them. The client is the address the
server reports (:func:`~subscribers.middleware.client_ip`): behind a proxy,
uvicorn takes it from ``X-Forwarded-For`` when the proxy is one of
``trusted_proxies``; this app never reads that header. Confirmations are
queued in the database and sent by the mailer, never while a reader waits.

Every response carries security headers; errors are plain pages (or JSON
for JSON clients) that never show internals.

FastAPI and the routes are imported inside :func:`create_app`, so that
importing this module costs little.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from subscribers.mail_template import OutgoingMessage
from subscribers.webconfig import WebConfig

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine

    from subscribers.mail import ServiceMail
    from subscribers.routes.deps import WebState

__all__ = ["WebConfig", "create_app"]


def create_app(
    engine: Engine,
    config: WebConfig,
    send_mail: Callable[[OutgoingMessage], object],
    static_dir: Path | None = None,
    *,
    mailer: bool = True,
    sns_fetch: Callable[[str], bytes] | None = None,
    mail: ServiceMail | None = None,
) -> FastAPI:
    """The web service over the subscribers in ``engine``.

    ``send_mail`` delivers the confirmation and welcome messages, from
    worker threads, never while a reader waits for an answer. Confirmations
    are queued in the database; with ``mailer`` the service runs a
    :class:`ConfirmationMailer` thread to send them, without it another
    process must (`publish serve` starts one). ``static_dir`` is the built
    site, served for every path the service itself does not answer; it may
    appear after the service starts. ``sns_fetch`` fetches SNS signing
    certificates and subscription confirmation URLs (by default over HTTPS,
    from SNS hosts only); tests hand in one that serves their own.
    ``mail`` gives the confirmation and welcome messages to fill
    (:class:`~subscribers.mail.ServiceMail`).
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from subscribers.middleware import Guard, site_files
    from subscribers.routes import confirm, errors, ses, signup, site, unsubscribe

    app = FastAPI(
        title=f"{config.name} subscriptions",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=_mailer_running,
        exception_handlers={
            HTTPException: errors.http_error,
            RequestValidationError: errors.invalid,
        },
    )
    app.state.web = _state(engine, config, send_mail, static_dir, mailer, sns_fetch, mail)
    for routes in (signup, confirm, unsubscribe, ses, site):
        app.include_router(routes.router)
    if static_dir is not None:
        app.mount("/", site_files(static_dir), name="site")
    app.add_middleware(
        Guard,
        max_body=config.max_body,
        site_url=config.site_url,
        on_error=errors.refused,
        body_limits={"/ses/events": config.max_events_body},
    )
    return app


def _state(
    engine: Engine,
    config: WebConfig,
    send_mail: Callable[[OutgoingMessage], object],
    static_dir: Path | None,
    mailer: bool,
    sns_fetch: Callable[[str], bytes] | None,
    mail: ServiceMail | None = None,
) -> WebState:
    """What the handlers share: the rules over the store, the pages, the
    SNS endpoint and, with ``mailer``, a confirmation mailer thread."""
    from subscribers.events import Policy, SnsEndpoint
    from subscribers.inbound import UnsubscribeMailbox
    from subscribers.mailer import ConfirmationMailer
    from subscribers.pages import Pages
    from subscribers.routes.deps import WebState
    from subscribers.sns import SnsVerifier, fetch_https

    service = config.subscriptions(engine, send_mail, mail)
    pages = Pages(config)
    _ = pages.headers  # made now, not while the first reader waits
    return WebState(
        config=config,
        service=service,
        pages=pages,
        ses_events=SnsEndpoint(
            service.store,
            SnsVerifier(config.sns_topic_arns, fetch=sns_fetch or fetch_https),
            Policy(transient_limit=config.transient_bounce_limit, tracking=config.tracking),
            mailbox=UnsubscribeMailbox(service.signer, config.unsubscribe_domain),
        ),
        confirmations=ConfirmationMailer(service) if mailer else None,
        static_dir=static_dir,
    )


@asynccontextmanager
async def _mailer_running(app: FastAPI) -> AsyncIterator[None]:
    """The app's lifespan: its confirmation mailer thread, if it has one,
    runs while the app serves, and is stopped (off the event loop) after."""
    from starlette.concurrency import run_in_threadpool

    confirmations = app.state.web.confirmations
    if confirmations is not None:
        confirmations.start()
    try:
        yield
    finally:
        if confirmations is not None:
            await run_in_threadpool(confirmations.stop)
