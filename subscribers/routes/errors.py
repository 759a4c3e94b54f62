"""The error pages: what the service answers when no handler does.

:func:`subscribers.web.create_app` installs these. FastAPI's own answers
(404 for an unknown path, 405, 422 for a path it cannot read, 413 from the
body limit) become the service's pages, or JSON for JSON clients, keeping
the exception's headers (``Allow``); the middleware's refusals (431, and 500
for an unexpected error) come through :func:`refused`. None shows internals.
"""

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from subscribers.routes.deps import wants_json, web_state


async def http_error(request: Request, exc: HTTPException) -> Response:
    response = web_state(request).pages.error(exc.status_code, as_json=wants_json(request))
    response.headers.update(exc.headers or {})
    return response


async def invalid(request: Request, exc: RequestValidationError) -> Response:
    return web_state(request).pages.error(422, as_json=wants_json(request))


def refused(request: Request, status: int) -> Response:
    """The page for ``status``, for :class:`~subscribers.middleware.Guard`."""
    return web_state(request).pages.error(status, as_json=wants_json(request))
