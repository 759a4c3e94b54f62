"""``/subscribe``: the signup form, and the signups it posts.

A signup is taken on the event loop as far as reading its body, then the
rules run on a worker thread (:meth:`Subscriptions.subscribe`); the
confirmation message is queued in the database and sent by the mailer,
never while the reader waits::

    POST /subscribe ──> read_fields ──> another site's? honeypot? ──> service.subscribe
                                                                 └──> mailer.notify()
                    <── "Almost done" (the site's own form, JSON)
                    <── 303 /subscribe/thanks (a form on another site's page)

The form may be on the service's pages, the built site's, or the blog's
(`publish embed`): the browser's ``Origin`` and ``Sec-Fetch-Site`` headers
say which (:func:`subscribers.provenance.poster`). A post from any other
site, or with the honeypot filled in, gets the very answer a real one would
and changes nothing. The page it came from (the ``source`` field, or
``?ref=``) is kept with the consent.
"""

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
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
from subscribers.routes.deps import (
    AsJsonDep,
    ConfigDep,
    ConfirmationsDep,
    OriginDep,
    PagesDep,
    ServiceDep,
)
from subscribers.signup import TooManySignups
from subscribers.text import clip
from subscribers.webconfig import WebConfig

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/subscribe", response_class=Response)
@router.head("/subscribe", include_in_schema=False)
def subscribe_page(request: Request, pages: PagesDep) -> Response:
    return pages.signup(signup_source(request.query_params.get("ref"), default=""))


@router.get("/subscribe/thanks", response_class=Response)
@router.head("/subscribe/thanks", include_in_schema=False)
def thanks_page(pages: PagesDep) -> Response:
    return pages.signup_thanks()


@router.post("/subscribe", response_class=Response, openapi_extra=SUBSCRIBE_BODY)
async def subscribe(
    request: Request,
    service: ServiceDep,
    config: ConfigDep,
    pages: PagesDep,
    confirmations: ConfirmationsDep,
    who: OriginDep,
    as_json: AsJsonDep,
) -> Response:
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
        subscriber_id = await run_in_threadpool(
            service.subscribe,
            email,
            name,
            consent_text=config.consent,
            origin=who,
            source=source,
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
    return poster(
        request.headers.get("origin"),
        request.headers.get("sec-fetch-site"),
        own=(config.site_origin, origin_of(str(request.base_url))),
        blog=config.blog_origin,
    )
