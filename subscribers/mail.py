"""The two messages the subscription service sends itself, "please confirm"
and "welcome", filled in for one reader.

Each is built once, from the newsletter's templates, by whoever wires the
service together (`publish serve`: :mod:`pipeline.service_mail`), as a
:class:`~subscribers.mail_template.MailTemplate`; this module only fills its
slots: To, Date, Message-ID, List-Unsubscribe, the link and the reader's
name, into the :class:`~subscribers.mail_template.OutgoingMessage` that
``send_mail`` is handed (envelope and bytes, ready for a transport). That
takes microseconds, where building a multipart message with the email
package takes about a millisecond. The service is handed a
:class:`ServiceMail`, whose callables return the current templates (the
welcome lists the latest issues, so it changes as issues go out).

    ServiceMail.confirm() ─ confirmation_message(template, subscriber, url) ─▶ OutgoingMessage
    ServiceMail.welcome() ─ welcome_message(template, subscriber, url, mailto) ─▶ OutgoingMessage
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from subscribers.addresses import ascii_address
from subscribers.headers import encode_mailbox
from subscribers.mail_template import (
    MailTemplate,
    OutgoingMessage,
    ascii_url,
    list_unsubscribe,
    qp_value,
)
from subscribers.models import Subscriber
from subscribers.text import one_line

__all__ = ["ServiceMail", "confirmation_message", "welcome_message"]


@dataclass(frozen=True)
class ServiceMail:
    """Where the service's two messages come from: each callable returns the
    template to send now (built once, rebuilt by its owner when it changes)."""

    confirm: Callable[[], MailTemplate]
    welcome: Callable[[], MailTemplate]


def confirmation_message(
    template: MailTemplate, subscriber: Subscriber, confirm_url: str
) -> OutgoingMessage:
    """ "Please confirm": the one message an unconfirmed address ever gets.

    Whoever typed the address in may not be the person who reads it, so
    nothing they typed is in it: the template greets nobody by name, and
    the To header is the bare address."""
    return _filled(template, subscriber, {"confirm_url": ascii_url(confirm_url)}, by_name=False)


def welcome_message(
    template: MailTemplate,
    subscriber: Subscriber,
    unsubscribe_url: str,
    unsubscribe_mailto: str = "",
) -> OutgoingMessage:
    """ "Welcome": sent once confirmed, with the reader's unsubscribe link.

    List-Unsubscribe offers the link (one click, RFC 8058) and, if given,
    ``unsubscribe_mailto``: the reader's address at the newsletter's
    unsubscribe domain (:func:`subscribers.unsubscribe_address.mailto`), never
    the editor's own mailbox."""
    url = ascii_url(unsubscribe_url)
    first_name = one_line(subscriber.name).split(" ", 1)[0] or template.greeting_fallback
    return _filled(
        template,
        subscriber,
        {"unsubscribe_url": url, "first_name": first_name},
        list_unsubscribe(url, unsubscribe_mailto),
    )


def _filled(
    template: MailTemplate,
    subscriber: Subscriber,
    body: dict[str, str],
    unsubscribe: bytes = b"",
    *,
    by_name: bool = True,
) -> OutgoingMessage:
    """``template`` filled for ``subscriber``: the header slots and, for each
    body slot ``part:name``, ``body[name]`` (escaped in the HTML part)."""
    address = ascii_address(subscriber.email)
    domain = template.sender.rpartition("@")[2]
    values = {
        "to": encode_mailbox("To", subscriber.name if by_name else "", address),
        # "+0000", not "GMT": RFC 5322 4.3 makes the named zones obsolete.
        "date": format_datetime(datetime.now(UTC)).encode("ascii"),
        "message_id": f"<{secrets.token_hex(12)}@{domain}>".encode("ascii"),
        "list_unsubscribe": unsubscribe,
    }
    for slot in template.slots:
        part, _, name = slot.partition(":")
        if name:
            value = body[name]
            values[slot] = qp_value(html.escape(value, quote=True) if part == "html" else value)
    return OutgoingMessage(
        sender=template.sender, recipient=address, raw=template.fill(values), tags=template.tags
    )
