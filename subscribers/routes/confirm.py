"""``/confirm/{token}``: the link in the confirmation message.

Mail scanners open every link in a message, so opening this one only shows
its button (``GET`` changes nothing); the button's ``POST`` confirms, and
the welcome message goes out after the answer::

    GET  /confirm/{token} ──> service.confirm_target ──> a button (or "subscribed")
    POST /confirm/{token} ──> service.confirm ──> "You are subscribed"
                                          └──> (new) send_welcome, in the background
"""

import logging
from collections.abc import Callable

from fastapi import APIRouter, BackgroundTasks
from starlette.responses import Response

from subscribers.errors import TokenError
from subscribers.routes.deps import OriginDep, PagesDep, ServiceDep

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/confirm/{token}", response_class=Response)
@router.head("/confirm/{token}", include_in_schema=False)
def confirm_page(token: str, service: ServiceDep, pages: PagesDep) -> Response:
    try:
        target = service.confirm_target(token)
    except TokenError as exc:
        return pages.confirm_problem(exc)
    if not target.pending:
        return pages.subscribed()
    return pages.confirm(token, target.subscriber.email)


@router.post("/confirm/{token}", response_class=Response)
def confirm(
    token: str,
    service: ServiceDep,
    pages: PagesDep,
    who: OriginDep,
    background: BackgroundTasks,
) -> Response:
    try:
        result = service.confirm(token, who)
    except TokenError as exc:
        return pages.confirm_problem(exc)
    if result.new:
        background.add_task(deliver, service.send_welcome, result.subscriber.id)
    return pages.subscribed()


def deliver(task: Callable[[int], bool], subscriber_id: int) -> None:
    """Run a mail ``task`` for a subscriber once the answer has gone out."""
    try:
        task(subscriber_id)
    except Exception:  # the reader has their answer; the editor has the log
        log.exception("could not mail subscriber %d", subscriber_id)
