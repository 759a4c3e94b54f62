"""The signup web service: thin FastAPI handlers over service.py.

    GET  /subscribe              the form
    POST /subscribe              form or JSON; the same answer whether or not
                                 the address is known; honeypot; rate limits
    GET  /confirm/{token}        a page with one button; changes nothing,
                                 because mail scanners follow links
    POST /confirm/{token}        confirms, recording when and from where
    GET  /unsubscribe/{token}    a page with one button; changes nothing,
                                 because mail scanners follow links
    POST /unsubscribe/{token}    unsubscribes at once; the RFC 8058 one-click
                                 target (no cookies, no CSRF token)
    POST /ses/events             SES bounces, complaints and deliveries posted
                                 by SNS: believed only when SNS signed them
                                 for a configured topic within the hour
                                 (``events.py``); 403 otherwise
    everything else              the built static site, when there is one

Against subscription bombing: signups per client network (an IPv4
address, an IPv6 /64) are limited, and the confirmation mailer limits its
messages per mailbox and per domain (``service.py``); the counters are in the
database, so every process shares them. The client is the address the
server reports (:func:`~subscribers.middleware.client_ip`): behind a proxy,
uvicorn takes it from ``X-Forwarded-For`` when the proxy is one of
``trusted_proxies``; this app never reads that header. Confirmations are
queued in the database and sent by the mailer, never while a reader waits.

Every response carries security headers; errors are plain pages (or JSON
for JSON clients) that never show internals (see ``middleware.py``).

FastAPI and Starlette are imported inside :func:`create_app`, so the site
builder can import :func:`signup_form_html` cheaply. This module does not use
``from __future__ import annotations``: FastAPI reads the handlers'
annotations at run time, and the handlers are closures.
"""

import base64
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from subscribers.errors import SubscriberError, TokenError
from subscribers.mail import TEMPLATES, templates
from subscribers.middleware import COMMON_HEADERS, Guard, client_ip, site_files
from subscribers.models import (
    CONFIRMATIONS_PER_ADDRESS,
    CONFIRMATIONS_PER_DOMAIN,
    MAX_EMAIL,
    MAX_NAME,
    SIGNUPS_PER_IP,
    TRUSTED_PROXIES,
    Limit,
    Newsletter,
    consent_wording,
    mask_email,
)
from subscribers.tokens import ExpiredToken, Signer

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine
    from starlette.responses import Response

    from subscribers.service import Subscriptions

log = logging.getLogger(__name__)

SNS_EVENT_THREADS = 4
"""Threads that handle posts to /ses/events, apart from the pages' own."""


@dataclass(frozen=True)
class WebConfig:
    name: str
    site_url: str
    sender: str
    """``Pain Free Living <newsletter@example.com>``"""
    reply_to: str
    postal_address: str
    secret: str = field(repr=False)
    previous_secret: str = field(default="", repr=False)
    """The secret of a rotation that links are still read with (see tokens.py)."""
    consent_text: str = ""
    """The wording next to the button, kept with each signup (empty: the default)."""
    per_ip: Limit = SIGNUPS_PER_IP
    """Signup requests from one client network (an IPv4 address, an IPv6 /64)."""
    per_address: Limit = CONFIRMATIONS_PER_ADDRESS
    """Confirmation messages to one mailbox, however its address is spelled."""
    per_domain: Limit = CONFIRMATIONS_PER_DOMAIN
    """Confirmation messages to one domain; more wait for a later window."""
    trusted_proxies: tuple[str, ...] = TRUSTED_PROXIES
    """Addresses and networks whose ``X-Forwarded-For`` the server believes
    (uvicorn's ``forwarded_allow_ips``; whoever serves the app passes it)."""
    max_body: int = 16 * 1024
    sns_topic_arns: tuple[str, ...] = ()
    """The SNS topics whose notifications ``POST /ses/events`` accepts."""
    transient_bounce_limit: int = 3
    max_events_body: int = 300 * 1024
    """SNS messages are up to 256 KB, plus the envelope."""

    @property
    def newsletter(self) -> Newsletter:
        return Newsletter(
            name=self.name,
            site_url=self.site_url,
            sender=self.sender,
            reply_to=self.reply_to,
            postal_address=self.postal_address,
        )

    @property
    def consent(self) -> str:
        return consent_wording(self.name, self.consent_text)

    def subscriptions(
        self, engine: "Engine", send_mail: Callable[[EmailMessage], None]
    ) -> "Subscriptions":
        """The subscription rules over the subscribers in ``engine``, with
        this configuration's secret, newsletter and per-address limit."""
        from subscribers.service import Subscriptions
        from subscribers.store import Store

        return Subscriptions(
            Store(engine),
            Signer(self.secret, self.previous_secret),
            self.newsletter,
            send_mail,
            self.per_address,
            per_domain=self.per_domain,
            per_network=self.per_ip,
        )


def signup_form_html(
    action_url: str,
    consent_text: str,
    *,
    email: str = "",
    name: str = "",
    error: str = "",
) -> str:
    """The signup form: email, optional first name, a honeypot and the consent
    wording, labelled for screen readers. Everything in it is escaped."""
    return str(
        templates()
        .get_template("web/form.html")
        .render(
            action=action_url,
            consent_text=consent_text,
            email=email,
            name=name,
            error=error,
            max_email=MAX_EMAIL,
            max_name=MAX_NAME,
        )
    )


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

_TITLES = {
    400: "This link is not valid",
    404: "Page not found",
    405: "Not allowed here",
    410: "This link has expired",
    413: "Too much data",
    415: "Unsupported request",
    422: "Please check the form",
    429: "Too many requests",
    500: "Something went wrong",
}
_STALE_TITLE = "This link is out of date"
_MESSAGES = {
    404: "There is nothing at this address.",
    405: "This page cannot be used that way.",
    413: "The request was larger than this service accepts.",
    415: "Send the form as a web form or as JSON.",
    422: "The request could not be understood.",
    429: "Too many signups came from your network. Please try again in a few minutes.",
    431: "The request's headers were larger than this service accepts.",
    500: "The service could not finish your request. Please try again in a little while.",
}
ACCEPTED = (
    "Thank you. If this address is not on the list yet, a message with a link "
    "to confirm is on its way: please check your inbox (and the spam folder) "
    "in a few minutes."
)


class _Pages:
    """Renders the service's own pages with their headers."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.newsletter = config.newsletter
        self.css = (TEMPLATES / "web" / "page.css").read_text(encoding="utf-8")
        digest = base64.b64encode(hashlib.sha256(self.css.encode("utf-8")).digest()).decode()
        self.headers = {
            **COMMON_HEADERS,
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'self' data:; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
        }

    def render(self, template: str, status: int, title: str, **values: Any) -> "Response":
        from starlette.responses import HTMLResponse

        html = (
            templates()
            .get_template(f"web/{template}")
            .render(
                newsletter=self.newsletter,
                css=Markup(self.css),  # noqa: S704 - our own stylesheet
                home_url=self.newsletter.url(""),
                title=title,
                **values,
            )
        )
        return HTMLResponse(html, status_code=status, headers=self.headers)

    def message(
        self,
        status: int,
        title: str,
        *paragraphs: str,
        form: str = "",
        alert: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> "Response":
        response = self.render(
            "message.html",
            status,
            title,
            paragraphs=paragraphs,
            form=Markup(form),  # noqa: S704 - escaped by signup_form_html
            alert=alert,
        )
        response.headers.update(headers or {})
        return response

    def form(self, *, email: str = "", name: str = "", error: str = "") -> str:
        return signup_form_html(
            "/subscribe", self.config.consent, email=email, name=name, error=error
        )

    def error(self, status: int, message: str = "", *, as_json: bool = False) -> "Response":
        from starlette.responses import JSONResponse

        text = message or _MESSAGES.get(status, "The request could not be served.")
        if as_json:
            return JSONResponse({"error": text}, status_code=status, headers=self.headers)
        return self.message(status, _TITLES.get(status, "Error"), text, alert=True)


# ---------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_SIGNUP_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "maxLength": MAX_EMAIL},
        "name": {"type": "string", "maxLength": MAX_NAME},
        "website": {"type": "string", "description": "Leave empty (a trap for robots)."},
    },
    "required": ["email"],
}
_SUBSCRIBE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _SIGNUP_SCHEMA},
            "application/json": {"schema": _SIGNUP_SCHEMA},
        },
    }
}
_ONE_CLICK_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
                }
            }
        },
    }
}


class _BadInput(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(
    engine: "Engine",
    config: WebConfig,
    send_mail: Callable[[EmailMessage], None],
    static_dir: Path | None = None,
    *,
    mailer: bool = True,
    sns_fetch: Callable[[str], bytes] | None = None,
) -> "FastAPI":
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
    """
    from anyio import CapacityLimiter, to_thread
    from fastapi import BackgroundTasks, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, RedirectResponse, Response

    from subscribers.events import Policy, SnsEndpoint
    from subscribers.service import ConfirmationMailer, Origin, StaleLink, TooManySignups
    from subscribers.sns import SnsVerifier, fetch_https

    service = config.subscriptions(engine, send_mail)
    pages = _Pages(config)
    ses_events = SnsEndpoint(
        service.store,
        SnsVerifier(config.sns_topic_arns, fetch=sns_fetch or fetch_https),
        Policy(transient_limit=config.transient_bounce_limit),
    )
    confirmations = ConfirmationMailer(service) if mailer else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if confirmations is not None:
            confirmations.start()
        try:
            yield
        finally:
            if confirmations is not None:
                await run_in_threadpool(confirmations.stop)

    app = FastAPI(
        title=f"{config.name} subscriptions",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    def origin(request: Request) -> Origin:
        return Origin(
            ip=client_ip(request.client.host if request.client else None),
            user_agent=request.headers.get("user-agent"),
        )

    def deliver(task: Callable[[int], bool], subscriber_id: int) -> None:
        try:
            task(subscriber_id)
        except Exception:  # the reader has their answer; the editor has the log
            log.exception("could not mail subscriber %d", subscriber_id)

    # -- subscribe -----------------------------------------------------------

    def page(path: str, **options: Any) -> Callable[[Any], Any]:
        """A GET route that answers HEAD too (link checkers use it)."""

        def register(handler: Any) -> Any:
            app.add_api_route(path, handler, methods=["HEAD"], include_in_schema=False)
            return app.get(path, response_class=Response, **options)(handler)

        return register

    @page("/subscribe")
    def subscribe_page() -> Response:
        return pages.message(
            200,
            f"Subscribe to {config.name}",
            "One email twice a month, free. We send a confirmation link first, "
            "and every issue has a one-click unsubscribe link.",
            form=pages.form(),
        )

    @app.post("/subscribe", response_class=Response, openapi_extra=_SUBSCRIBE_BODY)
    async def subscribe(request: Request) -> Response:
        as_json = _wants_json(request)
        try:
            fields = await _read_fields(request)
        except _BadInput as exc:
            return pages.error(exc.status, exc.message, as_json=as_json)
        if fields.get("website"):
            log.info("signup with the honeypot filled in, ignored")
            return _accepted(pages, as_json)
        who = origin(request)
        email, name = fields.get("email", ""), fields.get("name", "")
        try:
            subscriber_id = await run_in_threadpool(
                service.subscribe, email, name, consent_text=config.consent, origin=who
            )
        except TooManySignups as exc:
            response = pages.error(429, as_json=as_json)
            response.headers["Retry-After"] = str(max(1, int(exc.retry_after)))
            return response
        except SubscriberError as exc:
            problem = _for_readers(exc)
            if as_json:
                return pages.error(422, problem, as_json=True)
            return pages.message(
                422,
                _TITLES[422],
                form=pages.form(email=email[:MAX_EMAIL], name=name[:MAX_NAME], error=problem),
            )
        if subscriber_id is not None and confirmations is not None:
            confirmations.notify()
        return _accepted(pages, as_json)

    # -- confirm -------------------------------------------------------------

    def link_problem(exc: TokenError) -> Response:
        if isinstance(exc, StaleLink):
            return pages.message(410, _STALE_TITLE, _sentence(exc), form=pages.form())
        if isinstance(exc, ExpiredToken):
            return pages.message(410, _TITLES[410], _sentence(exc), form=pages.form())
        return pages.error(400, _sentence(exc))

    def subscribed() -> Response:
        return pages.message(
            200,
            "You are subscribed",
            f"Thank you for confirming. {config.name} will arrive in your inbox "
            "with the next issue.",
        )

    # Mail scanners open every link in a message, so opening this one only
    # shows its button; the button's POST confirms.
    @page("/confirm/{token}")
    def confirm_page(token: str) -> Response:
        try:
            target = service.confirm_target(token)
        except TokenError as exc:
            return link_problem(exc)
        if not target.pending:
            return subscribed()
        return pages.render(
            "confirm.html",
            200,
            "Confirm your subscription",
            masked_email=mask_email(target.subscriber.email),
            action=f"/confirm/{token}",
        )

    @app.post("/confirm/{token}", response_class=Response)
    def confirm(token: str, request: Request, background: BackgroundTasks) -> Response:
        try:
            result = service.confirm(token, origin(request))
        except TokenError as exc:
            return link_problem(exc)
        if result.new:
            background.add_task(deliver, service.send_welcome, result.subscriber.id)
        return subscribed()

    # -- unsubscribe ---------------------------------------------------------

    @page("/unsubscribe/{token}")
    def unsubscribe_page(token: str) -> Response:
        try:
            subscriber = service.unsubscribe_target(token)
        except TokenError as exc:
            return pages.error(400, _sentence(exc))
        if subscriber is None:
            return pages.message(
                200, "You are not on the list", "This address gets no mail from us."
            )
        if subscriber.status.has_left:
            return _unsubscribed(pages, subscriber.email)
        return pages.render(
            "unsubscribe.html",
            200,
            "Unsubscribe",
            masked_email=mask_email(subscriber.email),
            action=f"/unsubscribe/{token}",
        )

    @app.post("/unsubscribe/{token}", response_class=Response, openapi_extra=_ONE_CLICK_BODY)
    def unsubscribe(token: str, request: Request) -> Response:
        try:
            subscriber = service.unsubscribe(token, origin(request), "unsubscribe link")
        except TokenError as exc:
            return pages.error(400, _sentence(exc))
        return _unsubscribed(pages, subscriber.email if subscriber else "")

    # -- provider feedback -----------------------------------------------------

    # Posts to /ses/events wait for SNS's certificate hosts now and then:
    # they run on threads of their own, never more than SNS_EVENT_THREADS,
    # so that however slow those hosts are the pages keep their threads.
    events_limiter: list[CapacityLimiter] = []

    @app.post("/ses/events", response_class=Response, include_in_schema=False)
    async def ses_feedback(request: Request) -> Response:
        body = await request.body()
        if not events_limiter:  # made on the event loop that serves
            events_limiter.append(CapacityLimiter(SNS_EVENT_THREADS))
        answer = await to_thread.run_sync(ses_events.handle, body, limiter=events_limiter[0])
        return JSONResponse(
            {"status": answer.text}, status_code=answer.status, headers=pages.headers
        )

    # -- the site ------------------------------------------------------------

    @page("/", include_in_schema=False)
    def home() -> Response:
        from starlette.responses import FileResponse

        index = static_dir / "index.html" if static_dir else None
        if index is not None and index.is_file():
            return FileResponse(index)
        return RedirectResponse("/subscribe", status_code=303)

    if static_dir is not None:
        app.mount("/", site_files(static_dir), name="site")

    # -- errors --------------------------------------------------------------

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = pages.error(exc.status_code, as_json=_wants_json(request))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return pages.error(422, as_json=_wants_json(request))

    def refused(request: Request, status: int) -> Response:
        return pages.error(status, as_json=_wants_json(request))

    app.add_middleware(
        Guard,
        max_body=config.max_body,
        site_url=config.site_url,
        on_error=refused,
        body_limits={"/ses/events": config.max_events_body},
    )
    return app


def _accepted(pages: _Pages, as_json: bool) -> "Response":
    from starlette.responses import JSONResponse

    if as_json:
        return JSONResponse({"status": "ok", "message": ACCEPTED}, headers=pages.headers)
    return pages.message(200, "Almost done", ACCEPTED)


def _unsubscribed(pages: _Pages, email: str) -> "Response":
    return pages.message(
        200,
        "You are unsubscribed",
        f"You will get no more issues of {pages.newsletter.name}. "
        "Changed your mind? Subscribe again below; we will ask you to confirm.",
        form=pages.form(email=email),
    )


def _for_readers(error: SubscriberError) -> str:
    """``email: 'x' is not valid: reason`` as a reader should see it."""
    field, _, problem = str(error).partition(": ")
    problem = problem.split(" is not valid: ", 1)[-1]
    return f"Please check the {'email address' if field == 'email' else field}: {problem}"


def _sentence(error: Exception) -> str:
    """An error's one-line message as a sentence for the reader."""
    return str(error).capitalize() + "."


def _wants_json(request: Any) -> bool:
    content_type = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return "json" in content_type or ("json" in accept and "html" not in accept)


SIGNUP_JSON_DEPTH = 2
"""A signup is one object of text fields; two levels leave room for a list."""


async def _read_fields(request: Any) -> dict[str, str]:
    """The signup fields from a form or a JSON object, as text."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw: Mapping[str, Any]
    if content_type == "application/json":
        from subscribers.jsontext import TooDeep, loads

        try:
            raw = loads(await request.body(), max_depth=SIGNUP_JSON_DEPTH)
        except TooDeep:
            raise _BadInput(
                422, "The JSON is nested too deeply: send one object with an email field."
            ) from None
        except ValueError:  # UnicodeDecodeError is one
            raise _BadInput(422, "The body is not valid JSON.") from None
        if not isinstance(raw, dict):
            raise _BadInput(422, "Send a JSON object with an email field.")
    elif content_type in _FORM_TYPES:
        from starlette.exceptions import HTTPException

        try:
            raw = await request.form()
        except HTTPException:  # the body is too large
            raise
        except Exception:  # python-multipart's parse errors have no common base
            raise _BadInput(422, "The form data could not be read.") from None
    else:
        raise _BadInput(415, _MESSAGES[415])
    fields: dict[str, str] = {}
    for key in ("email", "name", "website"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _BadInput(422, f"{key}: must be text.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadInput(422, f"{key}: is not valid text.") from None
        fields[key] = value
    return fields
