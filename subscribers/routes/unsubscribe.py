"""``/unsubscribe/{token}``: the link in every issue, its one-click target,
and the optional question that follows.

Opening the link shows a button (``GET`` changes nothing, because mail
scanners follow links); the ``POST`` unsubscribes at once. Mailbox providers
post ``List-Unsubscribe=One-Click`` to the same address (RFC 8058), with no
cookies and no CSRF token, so the ``POST`` asks for neither, and records no
reason. The page it answers with asks, optionally, why the reader left;
that form posts to ``/unsubscribe/{token}/reason``, which keeps the answer
on the reader's unsubscribe event (:mod:`subscribers.leaving`)::

    GET  /unsubscribe/{token} ──> service.unsubscribe_target ──> a button
    POST /unsubscribe/{token} ──> service.unsubscribe ──> "You are unsubscribed"
                                                          + "Would you tell us why?"
    POST /unsubscribe/{token}/reason ──> service.give_reason ──> "Thank you"
"""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from subscribers.errors import NotFound, TokenError
from subscribers.forms import ONE_CLICK_BODY, REASON_BODY, REASON_FIELDS, BadInput, read_fields
from subscribers.leaving import BadReason, NotUnsubscribed
from subscribers.models import Status, Subscriber
from subscribers.pages import Pages
from subscribers.routes.deps import OriginDep, PagesDep, ServiceDep

router = APIRouter()


@router.get("/unsubscribe/{token}", response_class=Response)
@router.head("/unsubscribe/{token}", include_in_schema=False)
def unsubscribe_page(token: str, service: ServiceDep, pages: PagesDep) -> Response:
    try:
        subscriber = service.unsubscribe_target(token)
    except TokenError as exc:
        return pages.bad_link(exc)
    if subscriber is None:
        return pages.not_on_list()
    if subscriber.status.has_left:
        return left(pages, token, subscriber)
    return pages.unsubscribe(token, subscriber.email)


@router.post("/unsubscribe/{token}", response_class=Response, openapi_extra=ONE_CLICK_BODY)
def unsubscribe(token: str, service: ServiceDep, pages: PagesDep, who: OriginDep) -> Response:
    try:
        subscriber = service.unsubscribe(token, who, "unsubscribe link")
    except TokenError as exc:
        return pages.bad_link(exc)
    if subscriber is None:
        return pages.unsubscribed("")
    return left(pages, token, subscriber)


@router.post("/unsubscribe/{token}/reason", response_class=Response, openapi_extra=REASON_BODY)
async def reason(token: str, request: Request, service: ServiceDep, pages: PagesDep) -> Response:
    try:
        fields = await read_fields(request, REASON_FIELDS)
    except BadInput as exc:
        return pages.error(exc.status, exc.message)
    code, comment = fields.get("reason", ""), fields.get("comment", "")
    try:
        await run_in_threadpool(service.give_reason, token, code, comment)
    except TokenError as exc:
        return pages.bad_link(exc)
    except BadReason as exc:
        return pages.reason_problem(token, exc, code, comment)
    except NotFound:
        return pages.not_on_list()
    except NotUnsubscribed:
        return pages.still_subscribed()
    return pages.reason_kept()


def left(pages: Pages, token: str, subscriber: Subscriber) -> Response:
    """The page of a reader who has left: an unsubscribed one is asked why."""
    asked = token if subscriber.status == Status.UNSUBSCRIBED else ""
    return pages.unsubscribed(subscriber.email, asked)
