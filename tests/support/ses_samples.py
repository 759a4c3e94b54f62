"""SES notifications made from the saved samples in tests/data/ses.

Each sample is a notification as SES writes it, in one of its two shapes
(``notificationType``: identity notifications; ``event-``: configuration-set
event publishing). :func:`notification` rewrites one for other recipients,
message and feedback ids and moment, keeping everything else as SES wrote it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from functools import cache
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "ses"
TYPES = ("bounce-permanent", "bounce-transient", "bounce-undetermined", "complaint", "delivery")
SHAPES = ("", "event-")
"""Identity notifications, and configuration-set events."""


@cache
def _sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def sample(name: str) -> dict:
    return copy.deepcopy(_sample(name))


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(
    name: str,
    recipients: list[str],
    *,
    message_id: str | None = None,
    feedback_id: str | None = None,
    shape: str = "",
    at: dt.datetime | None = None,
) -> dict:
    """The sample ``shape + name`` about ``recipients`` of message ``message_id``."""
    body = sample(shape + name)
    kind = body.get("notificationType") or body.get("eventType")
    when = stamp(at or dt.datetime.now(dt.UTC))
    body["mail"]["messageId"] = message_id or f"0100{uuid.uuid4().hex}-000000"
    body["mail"]["destination"] = list(recipients)
    feedback_id = feedback_id or f"0100{uuid.uuid4().hex}-feedback"
    if kind == "Bounce":
        template = body["bounce"]["bouncedRecipients"][0]
        body["bounce"]["bouncedRecipients"] = [
            {**template, "emailAddress": address} for address in recipients
        ]
        body["bounce"].update(feedbackId=feedback_id, timestamp=when)
    elif kind == "Complaint":
        body["complaint"]["complainedRecipients"] = [{"emailAddress": a} for a in recipients]
        body["complaint"].update(feedbackId=feedback_id, timestamp=when)
    elif kind == "Delivery":
        body["delivery"].update(recipients=list(recipients), timestamp=when)
    return body


def envelope(body: dict | str, topic: str, *, message_id: str | None = None) -> dict:
    """An SNS envelope around ``body``, as SNS delivers to an SQS queue (the
    queue path trusts the queue, so no signature is checked there)."""
    return {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": body if isinstance(body, str) else json.dumps(body),
        "Timestamp": stamp(dt.datetime.now(dt.UTC)),
        "SignatureVersion": "1",
        "Signature": "unchecked",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService.pem",
    }
