"""RenderedIssue + recipient → OutgoingMessage, in microseconds.

Building a multipart message with the email package costs milliseconds, more
than an SES account's sending rate allows. So the MIME message is built once
per issue as a row of byte segments with *slots* between them, and each
recipient's message is those segments joined with the recipient's values:

    From, Reply-To, Subject, List-Id ...          built once, encoded here
    To, Date, Message-ID, List-Unsubscribe        a slot each, encoded per recipient
    text/plain part, quoted-printable             the greeting name and the
    text/html part, quoted-printable              unsubscribe URL are slots

The segments and every slot's encoding are :mod:`subscribers.mail_template`'s,
which the service's own messages share: header values are RFC 2047
encoded-words or quoted strings folded within 78 columns, and a body slot
is quoted-printable encoded on its own and joined to its neighbours by soft
line breaks, so every body line stays within 76 columns and decodes to
exactly what :meth:`RenderedIssue.fill` produces. A CR, LF or other control
character in a name or subject becomes a space: it can never start a header
of its own.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from pipeline.config import Settings
from pipeline.errors import SendError
from pipeline.issue import slugify
from pipeline.render import SLOT_NAMES, RenderedIssue
from subscribers.addresses import ascii_address, ascii_domain
from subscribers.errors import UndeliverableAddress
from subscribers.headers import encode_mailbox, encode_unstructured
from subscribers.mail_template import (
    MailTemplate,
    OutgoingMessage,
    ascii_url,
    build,
    list_unsubscribe,
    qp_value,
)
from subscribers.text import one_line
from subscribers.unsubscribe_address import mailto as unsubscribe_mailto

PREVIEW_PREFIX = "[PREVIEW] "


@dataclass(frozen=True)
class Recipient:
    """Who a message goes to: the ledger's snapshot of a subscriber."""

    subscriber_id: int
    email: str
    name: str = ""


# ---------------------------------------------------------------------------
# Header encoding
# ---------------------------------------------------------------------------


def greeting_name(name: str, fallback: str) -> str:
    """The name a greeting uses: the first word of ``name``, or ``fallback``."""
    words = one_line(name).split(" ", 1)
    return words[0] or fallback


# ---------------------------------------------------------------------------
# The message template and the personalizer
# ---------------------------------------------------------------------------


def build_template(
    rendered: RenderedIssue, settings: Settings, *, subject_prefix: str = ""
) -> MailTemplate:
    """Build the issue's MIME message once, with slots for the recipient."""
    sender = settings.sender
    reply_to = settings.reply_to
    sender_address = _setting_address("sender.from", sender.email)
    reply_to_address = _setting_address("sender.reply_to", reply_to.email)
    list_id = f"{slugify(settings.name)}.{ascii_domain(settings.site_host)}"
    head: list[bytes | str] = [
        encode_mailbox("From", sender.name or settings.name, sender_address),
        encode_mailbox("Reply-To", reply_to.name, reply_to_address),
        "to",
        encode_unstructured("Subject", subject_prefix + rendered.subject),
        b"Date: ",
        "date",
        b"\r\nMessage-ID: ",
        "message_id",
        b"\r\n" + encode_mailbox("List-Id", settings.name, list_id),  # RFC 2919
        b"List-Unsubscribe: ",
        "list_unsubscribe",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
    ]
    markers = {name: rendered.slot(name) for name in SLOT_NAMES}
    segments, slots = build(head, rendered.text, rendered.html, markers)
    return MailTemplate(
        segments=segments,
        slots=slots,
        sender=sender_address,
        unsubscribe_domain=ascii_domain(settings.unsubscribe_domain),
        tags=(("issue", rendered.issue.slug),),
    )


def _setting_address(key: str, address: str) -> str:
    """A configured address (``key`` names the setting) as :func:`ascii_address`
    writes it, or :class:`SendError` naming the setting."""
    try:
        return ascii_address(address)
    except UndeliverableAddress as exc:
        raise SendError(f"{key}: {exc}") from None


class Personalizer:
    """Makes each recipient's message from an issue rendered once.

    ``unsubscribe_token(subscriber_id)`` signs the token in the personal
    unsubscribe link, ``{site_url}/unsubscribe/{token}``, which goes into both
    the List-Unsubscribe header and the body. With ``sender.unsubscribe_domain``
    set, the header also offers the same token as a mailbox,
    ``unsubscribe+...@`` that domain (:mod:`subscribers.unsubscribe_address`):
    the same MAC re-encoded, no second signature. ``message_id_seed`` makes each
    recipient's Message-ID stable across retries and resumed runs (so a
    duplicate after a crash is recognizable as one); without it every
    message gets a random one.
    """

    def __init__(
        self,
        rendered: RenderedIssue,
        settings: Settings,
        unsubscribe_token: Callable[[int], str],
        *,
        subject_prefix: str = "",
        message_id_seed: str = "",
    ) -> None:
        self.template = build_template(rendered, settings, subject_prefix=subject_prefix)
        self._token = unsubscribe_token
        self._unsubscribe_base = ascii_url(settings.url("unsubscribe/"))
        self._fallback = settings.greeting_fallback
        self._domain = ascii_domain(settings.sender.domain)
        self._seed = message_id_seed.encode("utf-8")
        self._date: tuple[int, bytes] = (0, b"")

    def _now(self) -> bytes:
        second = int(time.time())
        cached = self._date
        if cached[0] != second:
            # "+0000", not "GMT": RFC 5322 4.3 makes the named zones obsolete.
            moment = datetime.fromtimestamp(second, UTC)
            cached = (second, format_datetime(moment).encode("ascii"))
            self._date = cached
        return cached[1]

    def message_id(self, recipient: Recipient) -> str:
        if self._seed:
            digest = hashlib.blake2b(
                b"%s:%d" % (self._seed, recipient.subscriber_id), digest_size=12
            ).hexdigest()
        else:
            digest = secrets.token_hex(12)
        return f"<{digest}@{self._domain}>"

    def unsubscribe_url(self, recipient: Recipient) -> str:
        return self._unsubscribe_base + self._token(recipient.subscriber_id)

    def __call__(self, recipient: Recipient) -> OutgoingMessage:
        """The recipient's message; :class:`UndeliverableAddress` if it has none."""
        address = ascii_address(recipient.email)
        token = self._token(recipient.subscriber_id)
        url = self._unsubscribe_base + token
        first_name = greeting_name(recipient.name, self._fallback)
        template = self.template
        html_name = html.escape(first_name, quote=True)
        html_url = html.escape(url, quote=True)
        values = {
            "to": encode_mailbox("To", recipient.name, address),
            "date": self._now(),
            "message_id": self.message_id(recipient).encode("ascii"),
            "list_unsubscribe": list_unsubscribe(
                url, unsubscribe_mailto(token, template.unsubscribe_domain)
            ),
            "text:first_name": qp_value(first_name),
            "text:unsubscribe_url": qp_value(url),
            "html:first_name": qp_value(html_name),
            "html:unsubscribe_url": qp_value(html_url),
        }
        return OutgoingMessage(
            sender=template.sender,
            recipient=address,
            raw=template.fill(values),
            tags=template.tags,
        )

