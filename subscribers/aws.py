"""An error from AWS as one line, in the same words wherever it is reported.

    ClientError (an error response)  "NoSuchBucket: The specified bucket does
                                      not exist (ListObjectsV2)": the AWS error
                                      code, its message, the operation
    NoCredentialsError               "no AWS credentials (set AWS_PROFILE, or
                                      AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    NoRegionError                    botocore's words and where to set one
    any other botocore error         its first line
    anything else                    None: not AWS's to word

The caller puts in front what it was talking to (``SES``, the bucket's
``s3://`` URL, the queue's URL), which names the service, and decides what
the error means for it: the SES transport still tells throttling from a
refusal by the code (:func:`error_response`), the queue reader still lets
anything not from AWS through.

Never a secret: of an error response only the code and the message are
read (S3's also carries the request's string-to-sign and the access key's
id), and the user and password part of any URL in a message is cut out.
botocore is imported only to tell its own exceptions apart, and only when
there is an exception to look at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_CREDENTIALS = (
    "no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
)
MAX_MESSAGE = 300

_USERINFO = re.compile(r"(?<=://)[^/\s@]*@")


@dataclass(frozen=True)
class ErrorResponse:
    """What AWS answered: ``code`` (``Throttling``, ``NoSuchBucket``), its
    message on one line, the HTTP status and the operation called."""

    code: str
    message: str
    status: int | None
    operation: str


def error_response(exc: BaseException) -> ErrorResponse | None:
    """The error response a botocore ``ClientError`` carries; None for any
    other exception."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or not isinstance(response.get("Error"), dict):
        return None
    error = response["Error"]
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return ErrorResponse(
        code=str(error.get("Code") or ""),
        message=_one_line(str(error.get("Message") or "")),
        status=status if isinstance(status, int) else None,
        operation=str(getattr(exc, "operation_name", "") or ""),
    )


def aws_problem(exc: BaseException) -> str | None:
    """``exc`` in one line if it is botocore's (see the table above), else None."""
    answer = error_response(exc)
    if answer is not None:
        words = ": ".join(part for part in (answer.code, answer.message) if part) or "error"
        if answer.message == answer.code:
            words = answer.code
        return f"{words} ({answer.operation})" if answer.operation else words
    try:
        from botocore import exceptions as aws
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, aws.NoCredentialsError):
        return NO_CREDENTIALS
    if isinstance(exc, aws.NoRegionError):
        return f"{_one_line(str(exc))} (set AWS_REGION or a profile's region)"
    if isinstance(exc, aws.BotoCoreError):
        return _one_line(str(exc).strip().split("\n", 1)[0]) or type(exc).__name__
    return None


def _one_line(text: str) -> str:
    """``text`` with runs of whitespace one space, no URL's user or password,
    at most :data:`MAX_MESSAGE` characters."""
    return _USERINFO.sub("", " ".join(text.split()))[:MAX_MESSAGE]
