"""``/unsubscribe/{token}``: the link in every issue, and its one-click target.

Opening the link shows a button (``GET`` changes nothing, because mail
scanners follow links); the ``POST`` unsubscribes at once. Mailbox providers
post ``List-Unsubscribe=One-Click`` to the same address (RFC 8058), with no
cookies and no CSRF token, so the ``POST`` asks for neither::

    GET  /unsubscribe/{token} ──> service.unsubscribe_target ──> a button
    POST /unsubscribe/{token} ──> service.unsubscribe ──> "You are unsubscribed"
"""

from fastapi import APIRouter
from starlette.responses import Response

from subscribers.errors import TokenError
from subscribers.forms import ONE_CLICK_BODY
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
        return pages.unsubscribed(subscriber.email)
    return pages.unsubscribe(token, subscriber.email)


@router.post("/unsubscribe/{token}", response_class=Response, openapi_extra=ONE_CLICK_BODY)
def unsubscribe(token: str, service: ServiceDep, pages: PagesDep, who: OriginDep) -> Response:
    try:
        subscriber = service.unsubscribe(token, who, "unsubscribe link")
    except TokenError as exc:
        return pages.bad_link(exc)
    return pages.unsubscribed(subscriber.email if subscriber else "")
