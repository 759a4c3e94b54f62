"""``/subscribe``: the signup form, and the signups it posts.

A signup is taken on the event loop as far as reading its body, then the
rules run on a worker thread (:meth:`Subscriptions.subscribe`); the
confirmation message is queued in the database and sent by the mailer,
never while the reader waits::

    POST /subscribe ──> read_fields ──> honeypot? ──> service.subscribe ──> "Almost done"
                                                                    └──> mailer.notify()
"""

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from subscribers.errors import SubscriberError
from subscribers.forms import SUBSCRIBE_BODY, BadInput, read_fields
from subscribers.routes.deps import (
    AsJsonDep,
    ConfigDep,
    ConfirmationsDep,
    OriginDep,
    PagesDep,
    ServiceDep,
)
from subscribers.signup import TooManySignups

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/subscribe", response_class=Response)
@router.head("/subscribe", include_in_schema=False)
def subscribe_page(pages: PagesDep) -> Response:
    return pages.signup()


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
    if fields.get("website"):
        log.info("signup with the honeypot filled in, ignored")
        return pages.accepted(as_json)
    email, name = fields.get("email", ""), fields.get("name", "")
    try:
        subscriber_id = await run_in_threadpool(
            service.subscribe, email, name, consent_text=config.consent, origin=who
        )
    except TooManySignups as exc:
        return pages.too_many_signups(exc.retry_after, as_json=as_json)
    except SubscriberError as exc:
        return pages.signup_problem(exc, email, name, as_json=as_json)
    if subscriber_id is not None and confirmations is not None:
        confirmations.notify()
    return pages.accepted(as_json)
