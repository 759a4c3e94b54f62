"""Amazon SES feedback notifications, parsed into plain events.

SES reports bounces, complaints and deliveries in two shapes, and either may
arrive wrapped in an SNS envelope (SQS without raw delivery, or an HTTPS
subscription) or bare (SQS with raw message delivery):

* identity notifications: ``{"notificationType": "Bounce", "bounce": {...}, "mail": {...}}``
* configuration-set event publishing: ``{"eventType": "Bounce", ...}``

Mail that SES receives (a receipt rule's SNS action, for the unsubscribe
addresses) arrives the same ways as ``{"notificationType": "Received",
"receipt": {"recipients": [...], "virusVerdict": ...}, "mail": {...},
"content": ...}``, read into a :class:`Received`.

:func:`parse` turns one message into one :class:`Feedback` per recipient.
Every field is untrusted: types are checked, sizes capped, and anything that
cannot be read raises :class:`MalformedNotification` rather than guessing.
Event types that carry no list-hygiene meaning (Send, Open, Click...) come
back as an empty list with ``ignored`` set, so the caller can log and drop
them. An Open or Click also comes back as an
:class:`~subscribers.engagement.Interaction`, which the events path counts
when ``tracking.enabled`` is on (:mod:`subscribers.engagement`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from subscribers.addresses import MAX_EMAIL, normalize_address
from subscribers.engagement.interactions import Interaction, read_interaction
from subscribers.errors import InvalidDomain, InvalidEmail

MAX_BODY_BYTES = 256 * 1024  # SQS's and SNS's own message size limit
MAX_RECIPIENTS = 100  # SES allows 50 recipients a message
MAX_FIELD = 1000

Kind = Literal["bounce", "complaint", "delivery"]
BOUNCE_TYPES = ("Permanent", "Transient", "Undetermined")


class MalformedNotification(ValueError):
    """The message is not a readable SES notification.

    An internal signal, outside the tree of :mod:`subscribers.errors`: the
    webhook answers 400 and logs it, and the queue keeps the message for its
    dead-letter queue. A ValueError, like what ``json`` raises for bad input."""


@dataclass(frozen=True)
class Feedback:
    """What happened to one message for one recipient."""

    kind: Kind
    recipient: str
    message_id: str
    """SES's id of the message the feedback is about (the ledger's message_id)."""
    event_id: str
    """Idempotency key: SES's feedback id (or message id for deliveries) and the address."""
    at: datetime
    bounce_type: str = ""
    """Permanent, Transient or Undetermined, for bounces."""
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """Mail SES received: who it was for, and what SES made of it."""

    message_id: str
    """SES's id of the received message."""
    recipients: tuple[str, ...]
    """The envelope recipients the receipt rule matched, as SES gives them."""
    virus: str = ""
    """``virusVerdict.status``: PASS, FAIL, GRAY, PROCESSING_FAILED ("" if absent)."""
    spam: str = ""
    """``spamVerdict.status``, the same way."""


@dataclass(frozen=True)
class Parsed:
    feedback: tuple[Feedback, ...]
    ignored: str = ""
    """The event type when the message was well-formed but not about list hygiene."""
    topic_arn: str = ""
    received: Received | None = None
    """For mail SES received, what :class:`Received` says of it."""
    interaction: Interaction | None = None
    """For an Open or Click event, what the engagement counts need of it."""


def parse(body: str | bytes) -> Parsed:
    """Parse one queue or HTTPS message body."""
    if isinstance(body, bytes):
        if len(body) > MAX_BODY_BYTES:
            raise MalformedNotification("message is larger than 256 KB")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNotification("message is not UTF-8") from None
    if len(body) > MAX_BODY_BYTES:
        raise MalformedNotification("message is larger than 256 KB")
    outer = _json_object(body, "message")
    topic = ""
    if "Type" in outer and "Message" in outer:  # an SNS envelope
        if outer.get("Type") != "Notification":
            return Parsed((), ignored=f"SNS {_text(outer.get('Type'), 'Type')}")
        topic = _text(outer.get("TopicArn", ""), "TopicArn")
        inner = _json_object(_text(outer["Message"], "Message", limit=MAX_BODY_BYTES), "Message")
    else:
        inner = outer
    received = _received(inner) if inner.get("notificationType") == "Received" else None
    return Parsed(_feedback(inner), ignored=_ignored(inner), topic_arn=topic, received=received,
                  interaction=read_interaction(inner))


def _ignored(message: dict[str, Any]) -> str:
    kind = message.get("notificationType") or message.get("eventType") or ""
    return "" if str(kind) in ("Bounce", "Complaint", "Delivery", "Received") else str(kind)[:50]


def _received(message: dict[str, Any]) -> Received:
    mail = _object(message.get("mail"), "mail")
    receipt = _object(message.get("receipt"), "receipt")
    recipients = _list(receipt.get("recipients"), "receipt.recipients")
    return Received(
        message_id=_text(mail.get("messageId"), "mail.messageId"),
        recipients=tuple(_text(r, "receipt.recipients[]", limit=400) for r in recipients),
        virus=_verdict(receipt, "virusVerdict"),
        spam=_verdict(receipt, "spamVerdict"),
    )


def _verdict(receipt: dict[str, Any], name: str) -> str:
    if receipt.get(name) is None:
        return ""
    return _text(_object(receipt[name], f"receipt.{name}").get("status", ""), f"{name}.status")


def _feedback(message: dict[str, Any]) -> tuple[Feedback, ...]:
    kind = message.get("notificationType", message.get("eventType"))
    if not isinstance(kind, str):
        raise MalformedNotification("no notificationType or eventType")
    if kind not in ("Bounce", "Complaint", "Delivery"):
        return ()
    mail = _object(message.get("mail"), "mail")
    message_id = _text(mail.get("messageId"), "mail.messageId")
    if kind == "Bounce":
        bounce = _object(message.get("bounce"), "bounce")
        bounce_type = _text(bounce.get("bounceType"), "bounce.bounceType")
        if bounce_type not in BOUNCE_TYPES:
            bounce_type = "Undetermined"
        feedback_id = _text(bounce.get("feedbackId"), "bounce.feedbackId")
        at = _time(bounce.get("timestamp"), "bounce.timestamp")
        recipients = _list(bounce.get("bouncedRecipients"), "bounce.bouncedRecipients")
        common = {"subtype": _text(bounce.get("bounceSubType", ""), "bounceSubType")}
        return tuple(
            Feedback(
                kind="bounce",
                recipient=(address := _address(r.get("emailAddress"), "emailAddress")),
                message_id=message_id,
                event_id=f"{feedback_id}:{address}",
                at=at,
                bounce_type=bounce_type,
                detail=common
                | {
                    key: _text(r.get(key, ""), key)
                    for key in ("action", "status", "diagnosticCode")
                    if r.get(key) is not None
                },
            )
            for r in (_object(item, "bouncedRecipients[]") for item in recipients)
        )
    if kind == "Complaint":
        complaint = _object(message.get("complaint"), "complaint")
        feedback_id = _text(complaint.get("feedbackId"), "complaint.feedbackId")
        at = _time(complaint.get("timestamp"), "complaint.timestamp")
        recipients = _list(complaint.get("complainedRecipients"), "complainedRecipients")
        detail = {
            key: _text(complaint[key], key)
            for key in ("complaintFeedbackType", "userAgent", "complaintSubType")
            if complaint.get(key) is not None
        }
        return tuple(
            Feedback(
                kind="complaint",
                recipient=(address := _address(r.get("emailAddress"), "emailAddress")),
                message_id=message_id,
                event_id=f"{feedback_id}:{address}",
                at=at,
                detail=detail,
            )
            for r in (_object(item, "complainedRecipients[]") for item in recipients)
        )
    delivery = _object(message.get("delivery"), "delivery")
    at = _time(delivery.get("timestamp"), "delivery.timestamp")
    recipients = _list(delivery.get("recipients"), "delivery.recipients")
    return tuple(
        Feedback(
            kind="delivery",
            recipient=(address := _address(r, "delivery.recipients[]")),
            message_id=message_id,
            event_id=f"delivery:{message_id}:{address}",
            at=at,
        )
        for r in recipients
    )


# -- untrusted field readers ------------------------------------------------


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedNotification(f"{what} is not JSON") from None
    return _object(value, what)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise MalformedNotification(f"{what} is not a non-empty list")
    if len(value) > MAX_RECIPIENTS:
        raise MalformedNotification(f"{what} has more than {MAX_RECIPIENTS} entries")
    return value


def _text(value: Any, what: str, limit: int = MAX_FIELD) -> str:
    if not isinstance(value, str):
        raise MalformedNotification(f"{what} is not text")
    if len(value) > limit:
        raise MalformedNotification(f"{what} is too long")
    # NUL cannot be stored in PostgreSQL's text; a diagnostic may carry one.
    return value.replace("\x00", "\ufffd")


def _address(value: Any, what: str) -> str:
    """The recipient, spelled as the store spells addresses, so that it is
    found there; one the store could never hold is kept as given, and finds
    nobody."""
    text = _text(value, what, limit=400).strip()
    # Bounce reports may carry a display name: "Name <a@b.example>".
    if "<" in text and text.endswith(">"):
        text = text[text.rindex("<") + 1 : -1].strip()
    if (
        text.count("@") < 1
        or len(text) > MAX_EMAIL
        or any(c.isspace() or not c.isprintable() for c in text)
    ):
        raise MalformedNotification(f"{what} is not an email address")
    try:
        return normalize_address(text)
    except (InvalidEmail, InvalidDomain):
        return text


def _time(value: Any, what: str) -> datetime:
    text = _text(value, what, limit=64)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedNotification(f"{what} is not a timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
