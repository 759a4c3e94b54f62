"""The List-Unsubscribe mailto: a reader's own address at the unsubscribe domain.

    link token     ``<id>.<mac>``                        tokens.py, base64url MAC
    mail address   ``unsubscribe+<id36>-<mac32>@DOMAIN``  the same id and MAC

The local part carries the same subscriber id and the same 128-bit MAC as
the reader's unsubscribe link, spelled for a mailbox: the id in base36, the
MAC in lowercase base32 without padding, so that a mail system that
lowercases local parts (many do) delivers a token that still reads.
Making one is a re-encoding of the link's token, not a second HMAC: the
sender makes one per recipient. The local part is at most 52 characters
(RFC 5321 allows 64).

Reading one (:func:`read`) accepts any case, rebuilds the link's token and
checks it with :meth:`Signer.read_unsubscribe`: the current secret and the
previous one of a rotation, compared in constant time. Anything else, a
foreign domain, a wrong prefix, a truncated or altered token, raises
:class:`TokenError`.
"""

from __future__ import annotations

import base64
import binascii
import re

from subscribers.addresses import ascii_domain
from subscribers.errors import InvalidDomain, TokenError
from subscribers.tokens import Signer

PREFIX = "unsubscribe+"
MAX_LOCAL_PART = 64
SUBJECT = "unsubscribe"
_MAC_BYTES = 16
_MAC32 = 26  # characters of 16 bytes in base32, without padding
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _BASE32 for b in _BASE32)
"""Every 10 bits as two base32 characters."""
_BASE36_PAIRS = tuple(a + b for a in _DIGITS for b in _DIGITS)
"""0 to 1295 as two base36 digits."""
_LOCAL = re.compile(rf"{re.escape(PREFIX)}([0-9a-z]{{1,13}})-([a-z2-7]{{{_MAC32}}})")


def local_part(token: str) -> str | None:
    """The local part for the unsubscribe link token ``token``; None when it
    is not one a :class:`Signer` makes (a preview's sample link)."""
    subscriber_id, dot, mac = token.partition(".")
    if not dot or not subscriber_id.isdigit() or len(mac) != 22:
        return None
    try:
        raw = binascii.a2b_base64(mac.replace("-", "+").replace("_", "/") + "==")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _MAC_BYTES:
        return None
    return f"{PREFIX}{_base36(int(subscriber_id))}-{_base32(raw)}"


def mailto(token: str, domain: str) -> str:
    """``mailto:unsubscribe+...@domain?subject=unsubscribe`` for the link token
    ``token``; "" without a domain, or when ``token`` is not a signed one."""
    if not domain:
        return ""
    local = local_part(token)
    return f"mailto:{local}@{domain}?subject={SUBJECT}" if local else ""


def read(signer: Signer, recipient: str, domain: str) -> int:
    """The subscriber whose unsubscribe address ``recipient`` is, at
    ``domain``; :class:`TokenError` if it is not one ``signer`` (or its
    previous secret) made."""
    local, at, host = recipient.rpartition("@")
    if not at or not domain or not _same_domain(host, domain):
        raise TokenError("not an address at the unsubscribe domain")
    if len(local) > MAX_LOCAL_PART or not local.isascii():
        raise TokenError("not an unsubscribe address")
    found = _LOCAL.fullmatch(local.lower())
    if found is None:
        raise TokenError("not an unsubscribe address")
    id36, mac32 = found.groups()
    if len(id36) > 1 and id36[0] == "0":
        raise TokenError("not an unsubscribe address")
    try:
        raw = base64.b32decode(mac32.upper() + "======")
    except (binascii.Error, ValueError):
        raise TokenError("not an unsubscribe address") from None
    if len(raw) != _MAC_BYTES or _base32(raw) != mac32:  # one spelling per MAC
        raise TokenError("not an unsubscribe address")
    mac = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return signer.read_unsubscribe(f"{int(id36, 36)}.{mac}")


def _same_domain(host: str, domain: str) -> bool:
    try:
        return ascii_domain(host.rstrip(".")) == ascii_domain(domain)
    except InvalidDomain:
        return False


def _base32(raw: bytes) -> str:
    """16 bytes in lowercase base32 without padding: the base64 module's own
    encoder, written in Python, takes twice as long as the HMAC."""
    high = int.from_bytes(raw[:10], "big")  # 80 bits: 8 pairs of characters
    low = int.from_bytes(raw[10:], "big") << 2  # 48 bits and 2 of padding: 5 pairs
    pairs = _PAIRS
    return "".join(
        (
            pairs[high >> 70],
            pairs[(high >> 60) & 1023],
            pairs[(high >> 50) & 1023],
            pairs[(high >> 40) & 1023],
            pairs[(high >> 30) & 1023],
            pairs[(high >> 20) & 1023],
            pairs[(high >> 10) & 1023],
            pairs[high & 1023],
            pairs[low >> 40],
            pairs[(low >> 30) & 1023],
            pairs[(low >> 20) & 1023],
            pairs[(low >> 10) & 1023],
            pairs[low & 1023],
        )
    )


def _base36(number: int) -> str:
    """``number`` in base36, two digits at a time."""
    if number < 1296:
        return _BASE36_PAIRS[number].lstrip("0") or "0"
    out = ""
    while number:
        number, rest = divmod(number, 1296)
        out = _BASE36_PAIRS[rest] + out
    return out.lstrip("0")
