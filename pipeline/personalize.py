"""RenderedIssue + recipient → OutgoingMessage, in microseconds.

Building a multipart message with the email package costs milliseconds, more
than an SES account's sending rate allows. So the MIME message is built once
per issue as a row of byte segments with *slots* between them, and each
recipient's message is those segments joined with the recipient's values:

    From, Reply-To, Subject, List-Id ...          built once, encoded here
    To, Date, Message-ID, List-Unsubscribe        a slot each, encoded per recipient
    text/plain part, quoted-printable             the greeting name and the
    text/html part, quoted-printable              unsubscribe URL are slots

Every slot's encoding is under this module's control: header values are
RFC 2047 encoded-words or quoted strings folded within 78 columns
(:mod:`pipeline.headers`), and a
body slot is quoted-printable encoded on its own and joined to its
neighbours by soft line breaks, so every body line stays within 76 columns
and decodes to exactly what :meth:`RenderedIssue.fill` produces. A CR, LF or
other control character in a name or subject becomes a space: it can never
start a header of its own. The boundary starts with ``=_``, which
quoted-printable text can never contain.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from pipeline.config import Settings
from pipeline.errors import SendError
from pipeline.headers import MAX_LINE, encode_mailbox, encode_unstructured
from pipeline.issue import slugify
from pipeline.render import SLOT_NAMES, RenderedIssue
from pipeline.transports.base import OutgoingMessage
from subscribers.addresses import ascii_address, ascii_domain
from subscribers.errors import UndeliverableAddress
from subscribers.text import one_line
from subscribers.unsubscribe_address import mailto as unsubscribe_mailto

PREVIEW_PREFIX = "[PREVIEW] "
_SOFT_BREAK = b"=\r\n"


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
# Quoted-printable body segments
# ---------------------------------------------------------------------------


def _qp(data: bytes) -> bytes:
    """Quoted-printable with CRLF line ends; every line within 76 columns and
    the last within 75, so that a soft line break can follow it."""
    encoded = binascii.b2a_qp(data, istext=True)
    return encoded.replace(b"\n", b"\r\n") if b"\n" in encoded else encoded


def _qp_value(value: str) -> bytes:
    """One slot value for a quoted-printable body: encoded on its own and
    ended by a soft line break, so the next segment starts a fresh line."""
    if not value:
        return b""
    return _qp(value.encode("utf-8")) + _SOFT_BREAK


def _body_segments(
    text: str, markers: dict[str, str], part: str
) -> tuple[list[bytes], list[str]]:
    """Split a body at its slot markers into encoded segments and slot keys.

    Returns ``n + 1`` segments for ``n`` slots; each segment that a slot
    follows ends at a line boundary (hard or soft).
    """
    text = text.replace("\r\n", "\n")
    by_marker = {marker: name for name, marker in markers.items()}
    pattern = re.compile("|".join(re.escape(m) for m in by_marker))
    segments: list[bytes] = []
    slots: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        literal = text[start : match.start()]
        encoded = _qp(literal.encode("utf-8"))
        if literal and not literal.endswith("\n"):
            encoded += _SOFT_BREAK
        segments.append(encoded)
        slots.append(f"{part}:{by_marker[match.group()]}")
        start = match.end()
    segments.append(_qp(text[start:].encode("utf-8")))
    return segments, slots


# ---------------------------------------------------------------------------
# The message template and the personalizer
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageTemplate:
    """The MIME message of one issue with its per-recipient slots.

    ``segments`` has one more item than ``slots``; a filled message is
    ``segments[0] + value(slots[0]) + segments[1] + ...``.
    """

    segments: tuple[bytes, ...]
    slots: tuple[str, ...]
    sender: str
    unsubscribe_domain: str
    """Where List-Unsubscribe's mailto goes (``unsubscribe+TOKEN@``); "": no mailto."""
    tags: tuple[tuple[str, str], ...]

    def fill(self, values: dict[str, bytes]) -> bytes:
        parts = [self.segments[0]]
        append = parts.append
        for slot, segment in zip(self.slots, self.segments[1:], strict=True):
            append(values[slot])
            append(segment)
        return b"".join(parts)


def build_template(
    rendered: RenderedIssue, settings: Settings, *, subject_prefix: str = ""
) -> MessageTemplate:
    """Build the issue's MIME message once, with slots for the recipient."""
    sender = settings.sender
    reply_to = settings.reply_to
    sender_address = _setting_address("sender.from", sender.email)
    reply_to_address = _setting_address("sender.reply_to", reply_to.email)
    boundary = f"=_pfl_{secrets.token_hex(12)}"
    list_id = f"{slugify(settings.name)}.{ascii_domain(settings.site_host)}"

    head = b"".join(
        (
            encode_mailbox("From", sender.name or settings.name, sender_address),
            encode_mailbox("Reply-To", reply_to.name, reply_to_address),
        )
    )
    after_to = b"".join(
        (
            encode_unstructured("Subject", subject_prefix + rendered.subject),
            b"Date: ",
        )
    )
    after_date = b"\r\nMessage-ID: "
    after_message_id = b"".join(
        (
            b"\r\n",
            encode_mailbox("List-Id", settings.name, list_id),  # RFC 2919
            b"List-Unsubscribe: ",
        )
    )
    after_unsubscribe = (
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative;\r\n"
        + f' boundary="{boundary}"\r\n'.encode("ascii")
        + b"\r\n"
        + f"--{boundary}\r\n".encode("ascii")
        + b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
    )
    between_parts = (
        f"\r\n--{boundary}\r\n".encode("ascii")
        + b'Content-Type: text/html; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")

    markers = {name: rendered.slot(name) for name in SLOT_NAMES}
    text_segments, text_slots = _body_segments(rendered.text, markers, "text")
    html_segments, html_slots = _body_segments(rendered.html, markers, "html")

    segments: list[bytes] = [head]
    slots: list[str] = []
    for slot, following in (
        ("to", after_to),
        ("date", after_date),
        ("message_id", after_message_id),
        ("list_unsubscribe", after_unsubscribe + text_segments[0]),
    ):
        slots.append(slot)
        segments.append(following)
    slots.extend(text_slots)
    segments.extend(text_segments[1:-1])
    segments.append(text_segments[-1] + between_parts + html_segments[0])
    slots.extend(html_slots)
    segments.extend(html_segments[1:])
    segments[-1] += tail
    return MessageTemplate(
        segments=tuple(segments),
        slots=tuple(slots),
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


def _list_unsubscribe(url: str, mailto: str) -> bytes:
    """The value of List-Unsubscribe (RFC 2369): the one-click URL (RFC 8058)
    and, when there is one, the mailto, folded between them.

    A URL cannot be folded, so a long one leaves its line longer than 78
    characters (within RFC 5322's hard limit of 998).
    """
    if not mailto:
        return f"<{url}>\r\n".encode("ascii")
    if len(url) + len(mailto) + 6 <= MAX_LINE - len("List-Unsubscribe: "):
        return f"<{url}>, <{mailto}>\r\n".encode("ascii")
    return f"<{url}>,\r\n <{mailto}>\r\n".encode("ascii")


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
        self._unsubscribe_base = _ascii_url(settings.url("unsubscribe/"))
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
            "list_unsubscribe": _list_unsubscribe(
                url, unsubscribe_mailto(token, template.unsubscribe_domain)
            ),
            "text:first_name": _qp_value(first_name),
            "text:unsubscribe_url": _qp_value(url),
            "html:first_name": _qp_value(html_name),
            "html:unsubscribe_url": _qp_value(html_url),
        }
        return OutgoingMessage(
            sender=template.sender,
            recipient=address,
            raw=template.fill(values),
            tags=template.tags,
        )


def _ascii_url(url: str) -> str:
    """``url`` with an IDNA 2008 host and percent-encoded path, as headers need."""
    if url.isascii():
        return url
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = ascii_domain(parts.hostname or "")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit(
        (parts.scheme, netloc, quote(parts.path, safe="/%"), quote(parts.query, safe="=&%"), "")
    )
