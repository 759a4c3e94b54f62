"""What the handlers are handed: the service's shared state and the FastAPI
dependencies that give each handler the part of it it needs.

:func:`subscribers.web.create_app` builds one :class:`WebState` per app and
keeps it on ``app.state.web``; a handler names what it needs by type, and
FastAPI looks it up for each request::

    create_app ──> app.state.web = WebState(config, service, pages, ...)
    request ──> Depends(subscriptions) ──> handler(service: ServiceDep, ...)

The providers are ``async`` so that FastAPI calls them on the event loop,
not on a worker thread each; they only read what is there. None of them
adds a parameter to the OpenAPI document.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from subscribers.events import SnsEndpoint
from subscribers.mailer import ConfirmationMailer
from subscribers.middleware import client_ip
from subscribers.pages import Pages
from subscribers.service import Origin, Subscriptions
from subscribers.webconfig import WebConfig


@dataclass(frozen=True)
class WebState:
    """Everything the handlers share, made once per app."""

    config: WebConfig
    service: Subscriptions
    """The subscription rules, over the store, signer and ``send_mail``."""
    pages: Pages
    ses_events: SnsEndpoint
    """Verifies and applies what SNS posts to ``/ses/events``."""
    confirmations: ConfirmationMailer | None
    """The mailer thread to wake after a signup; None when another process sends."""
    static_dir: Path | None
    """The built site, when there is one."""


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


async def subscriptions(request: Request) -> Subscriptions:
    return web_state(request).service


async def pages(request: Request) -> Pages:
    return web_state(request).pages


async def web_config(request: Request) -> WebConfig:
    return web_state(request).config


async def confirmations(request: Request) -> ConfirmationMailer | None:
    return web_state(request).confirmations


async def ses_events(request: Request) -> SnsEndpoint:
    return web_state(request).ses_events


async def static_dir(request: Request) -> Path | None:
    return web_state(request).static_dir


async def origin(request: Request) -> Origin:
    """Where the request came from, as consent and history record it."""
    return Origin(
        ip=client_ip(request.client.host if request.client else None),
        user_agent=request.headers.get("user-agent"),
    )


def wants_json(request: Request) -> bool:
    """Whether the client sent JSON or asked for it (and not for HTML)."""
    content_type = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return "json" in content_type or ("json" in accept and "html" not in accept)


async def as_json(request: Request) -> bool:
    return wants_json(request)


ServiceDep = Annotated[Subscriptions, Depends(subscriptions)]
PagesDep = Annotated[Pages, Depends(pages)]
ConfigDep = Annotated[WebConfig, Depends(web_config)]
ConfirmationsDep = Annotated[ConfirmationMailer | None, Depends(confirmations)]
SesEventsDep = Annotated[SnsEndpoint, Depends(ses_events)]
StaticDirDep = Annotated[Path | None, Depends(static_dir)]
OriginDep = Annotated[Origin, Depends(origin)]
AsJsonDep = Annotated[bool, Depends(as_json)]
