"""``POST /ses/events``: bounces, complaints and deliveries that SNS posts.

The body is handed to the :class:`~subscribers.events.SnsEndpoint`, which
believes it only when SNS signed it for a configured topic within the hour,
and answers 403 otherwise. Checking a signature may wait for SNS's
certificate hosts now and then, so these posts run on threads of their own,
never more than :data:`SNS_EVENT_THREADS`: however slow those hosts are, the
pages keep their threads::

    POST /ses/events ──> [one of SNS_EVENT_THREADS] SnsEndpoint.handle ──> {"status": ...}

The route is left out of the OpenAPI document: only SNS posts here.
"""

from typing import Annotated

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from subscribers.routes.deps import PagesDep, SesEventsDep

SNS_EVENT_THREADS = 4
"""Threads that handle posts to /ses/events, apart from the pages' own."""

router = APIRouter()


async def event_threads(request: Request) -> CapacityLimiter:
    """The app's limiter of threads for these posts. It is made on first
    use, so on the event loop that serves (an anyio limiter is made in one),
    and kept on ``app.state``."""
    state = request.app.state
    limiter: CapacityLimiter | None = getattr(state, "ses_event_threads", None)
    if limiter is None:
        limiter = state.ses_event_threads = CapacityLimiter(SNS_EVENT_THREADS)
    return limiter


EventThreadsDep = Annotated[CapacityLimiter, Depends(event_threads)]


@router.post("/ses/events", response_class=Response, include_in_schema=False)
async def ses_feedback(
    request: Request,
    ses_events: SesEventsDep,
    pages: PagesDep,
    threads: EventThreadsDep,
) -> Response:
    body = await request.body()
    answer = await to_thread.run_sync(ses_events.handle, body, limiter=threads)
    return JSONResponse({"status": answer.text}, status_code=answer.status, headers=pages.headers)
