"""A message built once as byte segments with slots, and filled per recipient.

Building a multipart message with the email package costs about a
millisecond, more than an SES account's sending rate allows. So every
message is built once as a row of byte segments with *slots* between them,
and each recipient's message is those segments joined with their values:

    build(head, text, html, markers) ─▶ (segments, slots)
        head     the header lines (bytes) and header slots (their names), in order
        text     the text/plain part  ┐ quoted-printable, each split at the
        html     the text/html part   ┘ markers into "text:NAME" / "html:NAME" slots
    MailTemplate(segments, slots, ...).fill({slot: bytes}) ─▶ the message's bytes
    OutgoingMessage(sender, recipient, raw, tags)        what a transport delivers

Both layers use it: pipeline/personalize.py builds an issue's message and
fills it for each reader; pipeline/service_mail.py builds the service's own
(confirm, welcome), which :mod:`subscribers.mail` fills for each signup.

Every slot's encoding is under this module's control: header values are
RFC 2047 encoded-words or quoted strings folded within 78 columns
(:mod:`subscribers.headers`), and a body slot is quoted-printable encoded
on its own (:func:`qp_value`) and joined to its neighbours by soft line
breaks, so every body line stays within 76 columns and decodes to exactly
the value. A CR, LF or other control character in a header value becomes a
space: it can never start a header of its own. The boundary starts with
``=_``, which quoted-printable text can never contain.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from subscribers.addresses import ascii_domain
from subscribers.headers import MAX_LINE

SOFT_BREAK = b"=\r\n"


def qp(data: bytes) -> bytes:
    """Quoted-printable with CRLF line ends; every line within 76 columns and
    the last within 75, so that a soft line break can follow it."""
    encoded = binascii.b2a_qp(data, istext=True)
    if b"\n" not in encoded:
        return encoded if len(encoded) <= 75 else _fold(encoded, 75)
    lines = encoded.split(b"\n")
    last = len(lines) - 1
    return b"\r\n".join(
        _fold(line, 75 if n == last else 76) if len(line) > 75 else line
        for n, line in enumerate(lines)
    )


def _fold(line: bytes, limit: int) -> bytes:
    """One encoded line cut by soft line breaks into lines of at most 76
    columns, the last of at most ``limit``, never inside an ``=XX``. (b2a_qp
    writes lines of 76, and 77 when one ends in an encoded space.)"""
    out: list[bytes] = []
    while len(line) > limit:
        cut = 75
        if line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        elif line[cut - 1 : cut] == b"=":
            cut -= 1
        out.append(line[:cut] + b"=")
        line = line[cut:]
    out.append(line)
    return b"\r\n".join(out)


def qp_value(value: str) -> bytes:
    """One slot value for a quoted-printable body: encoded on its own and
    ended by a soft line break, so the next segment starts a fresh line."""
    if not value:
        return b""
    return qp(value.encode("utf-8")) + SOFT_BREAK


def body_segments(
    text: str, markers: Mapping[str, str], part: str
) -> tuple[list[bytes], list[str]]:
    """Split a body at its slot markers (slot name to marker) into encoded
    segments and slot keys (``part:name``).

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
        encoded = qp(literal.encode("utf-8"))
        if literal and not literal.endswith("\n"):
            encoded += SOFT_BREAK
        segments.append(encoded)
        slots.append(f"{part}:{by_marker[match.group()]}")
        start = match.end()
    segments.append(qp(text[start:].encode("utf-8")))
    return segments, slots


def build(
    head: Iterable[bytes | str], text: str, html: str, markers: Mapping[str, str]
) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """A multipart/alternative message as (segments, slots).

    ``head`` is the header section in order: header lines as bytes (each
    ending in CRLF, or continued by the slot after it) and header slots as
    their names. The body is a text/plain and a text/html part, both UTF-8
    and quoted-printable, split at ``markers`` (slot name to the marker
    standing for it in ``text`` and ``html``).
    """
    boundary = f"=_pfl_{secrets.token_hex(12)}"
    items: list[bytes | str] = [
        *head,
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative;\r\n"
        + f' boundary="{boundary}"\r\n'.encode("ascii")
        + b"\r\n"
        + f"--{boundary}\r\n".encode("ascii")
        + b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n",
    ]
    items.extend(_interleave(*body_segments(text, markers, "text")))
    items.append(
        f"\r\n--{boundary}\r\n".encode("ascii")
        + b'Content-Type: text/html; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
    )
    items.extend(_interleave(*body_segments(html, markers, "html")))
    items.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    segments: list[bytes] = [b""]
    slots: list[str] = []
    for item in items:
        if isinstance(item, bytes):
            segments[-1] += item
        else:
            slots.append(item)
            segments.append(b"")
    return tuple(segments), tuple(slots)


def _interleave(segments: Sequence[bytes], slots: Sequence[str]) -> list[bytes | str]:
    """``segments[0], slots[0], segments[1], ...``: one more segment than slots."""
    items: list[bytes | str] = [segments[0]]
    for slot, segment in zip(slots, segments[1:], strict=True):
        items.extend((slot, segment))
    return items


@dataclass(frozen=True)
class MailTemplate:
    """A message built once, with its per-recipient slots.

    ``segments`` has one more item than ``slots``; a filled message is
    ``segments[0] + value(slots[0]) + segments[1] + ...``. Plain data:
    it crosses from the layer that builds it to the one that fills it.
    """

    segments: tuple[bytes, ...]
    slots: tuple[str, ...]
    sender: str
    """The envelope sender, the From address (ASCII)."""
    unsubscribe_domain: str = ""
    """Where List-Unsubscribe's mailto goes (``unsubscribe+TOKEN@``); "": no mailto."""
    tags: tuple[tuple[str, str], ...] = ()
    """Provider tags, e.g. (("issue", "calf-stretch"),) for SES message tags."""
    greeting_fallback: str = ""
    """The ``first_name`` slot's value for a reader who gave no name."""

    def fill(self, values: Mapping[str, bytes]) -> bytes:
        parts = [self.segments[0]]
        append = parts.append
        for slot, segment in zip(self.slots, self.segments[1:], strict=True):
            append(values[slot])
            append(segment)
        return b"".join(parts)


def list_unsubscribe(url: str, mailto: str) -> bytes:
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


def ascii_url(url: str) -> str:
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


@dataclass(frozen=True)
class OutgoingMessage:
    """One message for one recipient, as bytes on the wire: a filled
    template, what a transport delivers and ``send_mail`` is handed."""

    sender: str
    """Envelope sender (bare address)."""
    recipient: str
    """Envelope recipient (bare address)."""
    raw: bytes
    """The RFC 5322 message, CRLF line endings."""
    tags: tuple[tuple[str, str], ...] = ()
    """Provider tags, e.g. (("issue", "calf-stretch"),) for SES message tags."""

    @classmethod
    def from_email_message(cls, message: EmailMessage) -> OutgoingMessage:
        """Wrap a message built with the email package (tests, tools)."""
        from email import policy

        sender = getaddresses([str(message["From"])])[0][1]
        recipient = getaddresses([str(message["To"])])[0][1]
        raw = message.as_bytes(policy=policy.SMTP)
        return cls(sender=sender, recipient=recipient, raw=raw)
