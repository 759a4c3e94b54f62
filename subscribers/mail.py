"""The two messages the subscription service sends itself: "please confirm"
and "welcome". Each is a complete :class:`EmailMessage` (text and HTML);
whoever wires the service together delivers it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from subscribers.models import Newsletter, Subscriber

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def templates() -> Environment:
    """The Jinja2 environment for the service's pages and mail (autoescaped HTML)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,  # no stat() of every template on every render
    )


class _HeaderClasses(HeaderRegistry):
    """The standard header classes, made once each: the standard registry
    makes a new class for every header it parses, a third of the cost of
    building a message."""

    @cache  # noqa: B019 - one registry per process, never freed anyway
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


POLICY = policy.default.clone(header_factory=_HeaderClasses())
"""The email policy of the messages built here: the standard one, faster."""


def confirmation_message(
    newsletter: Newsletter, subscriber: Subscriber, confirm_url: str
) -> EmailMessage:
    """ "Please confirm": the one message an unconfirmed address ever gets.

    Whoever typed the address in may not be the person who reads it, so
    nothing they typed is in it: it greets nobody by name, and its To header
    is the bare address."""
    return _message(
        newsletter,
        subscriber,
        f"Please confirm your subscription to {newsletter.name}",
        "confirm",
        {"confirm_url": confirm_url},
        by_name=False,
    )


def welcome_message(
    newsletter: Newsletter,
    subscriber: Subscriber,
    unsubscribe_url: str,
    unsubscribe_mailto: str = "",
) -> EmailMessage:
    """ "Welcome": sent once confirmed, with the reader's unsubscribe link.

    List-Unsubscribe offers the link (one click, RFC 8058) and, if given,
    ``unsubscribe_mailto``: the reader's address at the newsletter's
    unsubscribe domain (:func:`subscribers.unsubscribe_address.mailto`), never
    the editor's own mailbox."""
    message = _message(
        newsletter,
        subscriber,
        f"Welcome to {newsletter.name}",
        "welcome",
        {"unsubscribe_url": unsubscribe_url, "archive_url": newsletter.url("")},
    )
    targets = (unsubscribe_url, unsubscribe_mailto) if unsubscribe_mailto else (unsubscribe_url,)
    message["List-Unsubscribe"] = ", ".join(f"<{target}>" for target in targets)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def _message(
    newsletter: Newsletter,
    subscriber: Subscriber,
    subject: str,
    template: str,
    values: dict[str, Any],
    *,
    by_name: bool = True,
) -> EmailMessage:
    env = templates()
    first_name = subscriber.first_name if by_name else ""
    context = {"newsletter": newsletter, "first_name": first_name, **values}
    sender = _mailbox(newsletter.sender)
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject
    message["From"] = newsletter.sender
    message["To"] = _recipient(subscriber, by_name=by_name)
    message["Reply-To"] = newsletter.reply_to
    message["Date"] = format_datetime(datetime.now(UTC))  # "+0000" (RFC 5322 3.3)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(
        env.get_template(f"mail/{template}.txt").render(context), cte="quoted-printable"
    )
    message.add_alternative(
        env.get_template(f"mail/{template}.html").render(context),
        subtype="html",
        cte="quoted-printable",
    )
    return message


def _recipient(subscriber: Subscriber, *, by_name: bool = True) -> Address:
    username, _, domain = subscriber.email.rpartition("@")
    name = subscriber.name if by_name else ""
    return Address(display_name=name, username=username, domain=domain)


def _mailbox(address: str) -> str:
    """The bare address in ``Name <address>``."""
    return getaddresses([address])[0][1]
