"""``/subscribe``: the signup form, and the signups it posts.

A signup is taken on the event loop as far as reading its body, then the
rules run on a worker thread of the signups' own (:func:`signup_threads`:
one for SQLite, which has one writer, a few for PostgreSQL); the
confirmation message is queued in the database and sent by the mailer,
never while the reader waits::

    POST /subscribe ──> read_fields ──> another site's? honeypot? ──> service.subscribe
                                                   [a signup thread] └──> mailer.notify()
                    <── "Almost done" (the site's own form, JSON)
                    <── 303 /subscribe/thanks (a form on another site's page)

The form may be on the service's pages, the built site's, or the blog's
(`publish embed`): the browser's ``Origin`` and ``Sec-Fetch-Site`` headers
say which (:func:`subscribers.provenance.poster`). A post from any other
site, or with the honeypot filled in, gets the very answer a real one would
and changes nothing. The page it came from (the ``source`` field, or
``?ref=``) is kept with the consent.
"""

import asyncio
import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from subscribers.errors import SubscriberError
from subscribers.forms import SUBSCRIBE_BODY, BadInput, read_fields
from subscribers.provenance import (
    BLOG_SIDEBAR,
    SIGNUP_PAGE,
    Poster,
    origin_of,
    poster,
    signup_source,
)
from subscribers.routes.deps import PagesDep, origin, wants_json, web_state
from subscribers.service import Subscriptions
from subscribers.signup import TooManySignups
from subscribers.text import clip
from subscribers.webconfig import WebConfig

log = logging.getLogger(__name__)

SIGNUP_THREADS = {"sqlite": 1, "postgresql": 2}
"""Signups recorded at once, by database. More would only wait, and cost
more: SQLite has one writer (a second thread would wait for its lock, and
for the GIL while holding it); a PostgreSQL signup is one statement, and
two threads keep the server busy (each more is a thread more asking for
the GIL, and past the engine's pool of five connections a connection
opened and closed again, which costs more than the signup itself)."""

_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()

router = APIRouter()


def signup_threads(service: Subscriptions) -> Executor:
    """The threads that record signups into ``service``'s database, as many
    as :data:`SIGNUP_THREADS` says, shared by the apps of this process: a
    plain executor, which hands a signup over and back at a fraction of
    what anyio's thread pool costs."""
    threads = SIGNUP_THREADS.get(service.store.engine.dialect.name, 4)
    with _executors_lock:
        executor = _executors.get(threads)
        if executor is None:
            executor = _executors[threads] = ThreadPoolExecutor(
                threads, thread_name_prefix="signup"
            )
        return executor


@router.get("/subscribe", response_class=Response)
@router.head("/subscribe", include_in_schema=False)
def subscribe_page(request: Request, pages: PagesDep) -> Response:
    return pages.signup(signup_source(request.query_params.get("ref"), default=""))


@router.get("/subscribe/thanks", response_class=Response)
@router.head("/subscribe/thanks", include_in_schema=False)
def thanks_page(pages: PagesDep) -> Response:
    return pages.signup_thanks()


@router.post("/subscribe", response_class=Response, openapi_extra=SUBSCRIBE_BODY)
async def subscribe(request: Request) -> Response:
    # What the other routes are handed as dependencies, read here directly:
    # every signup comes this way, and FastAPI's resolving of six
    # dependencies costs more than the rest of the handler's own work.
    web = web_state(request)
    service, config, pages, confirmations = web.service, web.config, web.pages, web.confirmations
    as_json = wants_json(request)
    try:
        fields = await read_fields(request)
    except BadInput as exc:
        return pages.error(exc.status, exc.message, as_json=as_json)
    posted_by = posted_from(request, config)
    if posted_by is Poster.FOREIGN:
        log.info(
            "signup posted from another site (%s), ignored",
            clip(request.headers.get("origin"), 100) or request.headers.get("sec-fetch-site"),
        )
        return pages.accepted(as_json, elsewhere=True)
    elsewhere = posted_by is Poster.BLOG
    if fields.get("website"):
        log.info("signup with the honeypot filled in, ignored")
        return pages.accepted(as_json, elsewhere=elsewhere)
    email, name = fields.get("email", ""), fields.get("name", "")
    source = signup_source(
        fields.get("source") or request.query_params.get("ref"),
        default=BLOG_SIDEBAR if elsewhere else SIGNUP_PAGE,
    )
    try:
        job = partial(
            service.subscribe,
            email,
            name,
            consent_text=config.consent,
            origin=await origin(request),
            source=source,
        )
        subscriber_id = await asyncio.get_running_loop().run_in_executor(
            signup_threads(service), job
        )
    except TooManySignups as exc:
        return pages.too_many_signups(exc.retry_after, as_json=as_json)
    except SubscriberError as exc:
        return pages.signup_problem(exc, email, name, source, as_json=as_json)
    if subscriber_id is not None and confirmations is not None:
        confirmations.notify()
    return pages.accepted(as_json, elsewhere=elsewhere)


def posted_from(request: Request, config: WebConfig) -> Poster:
    """Whose page the signup was posted from: the service's own (its site,
    or the address it was reached at), the blog's, or another site's."""
    named = request.headers.get("origin")
    # The address it was reached at matters only to a post that names an origin.
    reached = origin_of(str(request.base_url)) if named else None
    return poster(
        named,
        request.headers.get("sec-fetch-site"),
        own=(config.site_origin, reached),
        blog=config.blog_origin,
    )
