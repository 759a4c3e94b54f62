"""The request bodies the web service reads by hand, and how OpenAPI describes them.

A signup arrives as a web form (urlencoded or multipart) or as a JSON
object; either way :func:`read_fields` hands back its text fields, or
raises :class:`BadInput` with the status and the reason to answer with::

    POST /subscribe body ──> read_fields ──> {"email": ..., "name": ..., "website": ...,
                                        │     "source": ...}
                                        └──> BadInput(415 | 422, reason)

The reason a reader gives after unsubscribing (``reason``, ``comment``) is
read the same way, with :data:`REASON_FIELDS`.

The handlers read their bodies themselves (FastAPI would answer a bad one
with its own error, naming its internals), so the documented request bodies
are written out here: :data:`SUBSCRIBE_BODY`, the RFC 8058 one-click
:data:`ONE_CLICK_BODY` and :data:`REASON_BODY`, given to the routes as
``openapi_extra``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from subscribers.addresses import MAX_EMAIL
from subscribers.errors import SubscriberError
from subscribers.models import MAX_LEAVING_COMMENT, LeavingReason
from subscribers.provenance import MAX_SOURCE
from subscribers.text import MAX_NAME

if TYPE_CHECKING:
    from starlette.requests import Request

SIGNUP_JSON_DEPTH = 2
"""A signup is one object of text fields; two levels leave room for a list."""
SIGNUP_FIELDS = ("email", "name", "website", "source")
"""The fields a signup may carry; ``website`` is the honeypot, which people
leave empty, and ``source`` the page the form is on."""
REASON_FIELDS = ("reason", "comment")
"""The fields of the form that asks why a reader left."""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_SIGNUP_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "maxLength": MAX_EMAIL},
        "name": {"type": "string", "maxLength": MAX_NAME},
        "website": {"type": "string", "description": "Leave empty (a trap for robots)."},
        "source": {
            "type": "string",
            "maxLength": MAX_SOURCE,
            "description": "The page the form is on (or ?ref= in the query).",
        },
    },
    "required": ["email"],
}
SUBSCRIBE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _SIGNUP_SCHEMA},
            "application/json": {"schema": _SIGNUP_SCHEMA},
        },
    }
}
ONE_CLICK_BODY = {
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


REASON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "reason": {"type": "string", "enum": [str(r) for r in LeavingReason]},
                        "comment": {"type": "string", "maxLength": MAX_LEAVING_COMMENT},
                    },
                }
            }
        },
    }
}


class BadInput(SubscriberError):
    """A body that is no signup: answer ``status`` with ``message`` (empty:
    the status's own wording)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_fields(
    request: Request, fields: tuple[str, ...] = SIGNUP_FIELDS
) -> dict[str, str]:
    """The ``fields`` (a signup's) from a form or a JSON object, as text.

    A body over the service's limit raises the 413 ``HTTPException`` the
    middleware raised, so that it is answered like any other."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = _json_object(await request.body())
    elif content_type in _FORM_TYPES:
        raw = await _form(request)
    else:
        raise BadInput(415)
    return {key: _text(key, raw[key]) for key in fields if raw.get(key) is not None}


def _json_object(body: bytes) -> Mapping[str, Any]:
    from subscribers.jsontext import TooDeep, loads

    try:
        raw = loads(body, max_depth=SIGNUP_JSON_DEPTH)
    except TooDeep:
        raise BadInput(
            422, "The JSON is nested too deeply: send one object with an email field."
        ) from None
    except ValueError:  # UnicodeDecodeError is one
        raise BadInput(422, "The body is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise BadInput(422, "Send a JSON object with an email field.")
    return raw


async def _form(request: Request) -> Mapping[str, Any]:
    from starlette.exceptions import HTTPException

    try:
        return await request.form()
    except HTTPException:  # the body is too large
        raise
    except Exception:  # python-multipart's parse errors have no common base
        raise BadInput(422, "The form data could not be read.") from None


def _text(key: str, value: Any) -> str:
    """``value`` if it is text that can be stored (no lone surrogates)."""
    if not isinstance(value, str):
        raise BadInput(422, f"{key}: must be text.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(422, f"{key}: is not valid text.") from None
    return value
