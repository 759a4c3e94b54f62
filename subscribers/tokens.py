"""Signed tokens for the links in subscription mail.

    unsubscribe   ``<id>.<mac>``              never expires; the same for a
                                              subscriber every time, so it can
                                              sit in every issue they receive
    confirm       ``<id>.<signup>.<issued>.<mac>``
                                              expires after seven days; good
                                              only for the signup whose nonce
                                              it carries (``<id>.<issued>.<mac>``,
                                              from before links carried one,
                                              reads as the empty nonce)

``mac`` is HMAC-SHA256 over the purpose and the fields, truncated to 128 bits
and written in base64url without padding. Each purpose has its own key,
derived from the one secret, so a token made for one purpose never passes as
the other. Signing an unsubscribe token costs one HMAC (a few microseconds):
the sender makes one per recipient.

Rotating the secret: tokens are always signed with the current secret and
read with the current one, then the previous one when there is one
(``NEWSLETTER_TOKEN_SECRET_PREVIOUS``), so links already mailed keep working
until the previous secret is dropped.

A secret must be long and random: :func:`check_secret` refuses one shorter
than :data:`MIN_SECRET_LENGTH`, with fewer than :data:`MIN_DISTINCT`
different characters, or of less than :data:`MIN_SECRET_BITS` by
:func:`estimated_bits` (repeats and runs like ``abcabc`` or ``1234`` count
for little).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from subscribers.errors import TokenError
from subscribers.files import PRIVATE, atomic_text

log = logging.getLogger(__name__)

SECRET_ENV = "NEWSLETTER_TOKEN_SECRET"  # noqa: S105 - the variable's name
PREVIOUS_SECRET_ENV = "NEWSLETTER_TOKEN_SECRET_PREVIOUS"  # noqa: S105 - the variable's name
MIN_SECRET_LENGTH = 16
MIN_SECRET_BITS = 80
MIN_DISTINCT = 10
MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
CONFIRM_LIFETIME = dt.timedelta(days=7)
_MAC_BYTES = 16
_MAX_TOKEN = 100
_CLOCK_SKEW = dt.timedelta(minutes=5)
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ExpiredToken(TokenError):
    """A genuine confirmation link that is too old to use."""


@dataclass(frozen=True)
class ConfirmLink:
    """What a confirmation link says: whose signup, and which one."""

    subscriber_id: int
    signup: str
    """The signup's nonce; empty in links from before they carried one."""


class Signer:
    """Makes confirm and unsubscribe tokens with one secret, and reads those
    made with it or with the ``previous`` secret of a rotation."""

    __slots__ = ("_confirm", "_confirm_previous", "_unsubscribe", "_unsubscribe_previous")

    def __init__(self, secret: str | bytes, previous: str | bytes = "") -> None:
        self._unsubscribe, self._confirm = _keys(secret, SECRET_ENV)
        self._unsubscribe_previous: tuple[hmac.HMAC, ...] = ()
        self._confirm_previous: tuple[hmac.HMAC, ...] = ()
        if previous:
            unsubscribe, confirm = _keys(previous, PREVIOUS_SECRET_ENV)
            self._unsubscribe_previous, self._confirm_previous = (unsubscribe,), (confirm,)

    def __repr__(self) -> str:
        return "Signer(<secret>)"

    # -- unsubscribe ---------------------------------------------------------

    def unsubscribe(self, subscriber_id: int) -> str:
        payload = str(subscriber_id)
        return f"{payload}.{_mac(self._unsubscribe, payload)}"

    def read_unsubscribe(self, token: str) -> int:
        """The subscriber id in ``token``; :class:`TokenError` if it was not made here."""
        parts = _split(token, 2)
        subscriber_id = _id(parts[0])
        if not _signed(parts[1], parts[0], self._unsubscribe, self._unsubscribe_previous):
            raise TokenError("this unsubscribe link is not valid; it may be incomplete")
        return subscriber_id

    # -- confirm -------------------------------------------------------------

    def confirm(
        self, subscriber_id: int, issued_at: dt.datetime | None = None, *, signup: str = ""
    ) -> str:
        """A link for the signup whose nonce is ``signup``."""
        if signup and not _NONCE.fullmatch(signup):
            raise ValueError(f"not a signup nonce: {signup!r}")
        issued = int((issued_at or dt.datetime.now(dt.UTC)).timestamp())
        payload = ".".join(part for part in (str(subscriber_id), signup, _b36(issued)) if part)
        return f"{payload}.{_mac(self._confirm, payload)}"

    def read_confirm(self, token: str, now: dt.datetime | None = None) -> int:
        """The subscriber id in ``token`` (see :meth:`read_confirm_link`)."""
        return self.read_confirm_link(token, now).subscriber_id

    def read_confirm_link(self, token: str, now: dt.datetime | None = None) -> ConfirmLink:
        """The subscriber and signup in ``token``; :class:`TokenError` if it
        was not made here, :class:`ExpiredToken` if it is more than seven
        days old."""
        parts = _split(token, 4 if isinstance(token, str) and token.count(".") == 3 else 3)
        subscriber_id = _id(parts[0])
        signup = parts[1] if len(parts) == 4 else ""
        if signup and not _NONCE.fullmatch(signup):
            raise TokenError("this confirmation link is not valid")
        payload = ".".join(parts[:-1])
        if not _signed(parts[-1], payload, self._confirm, self._confirm_previous):
            raise TokenError("this confirmation link is not valid; it may be incomplete")
        try:
            issued = dt.datetime.fromtimestamp(int(parts[-2], 36), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise TokenError("this confirmation link is not valid") from None
        current = now or dt.datetime.now(dt.UTC)
        if issued > current + _CLOCK_SKEW:
            raise TokenError("this confirmation link is not valid")
        if current - issued > CONFIRM_LIFETIME:
            raise ExpiredToken("this confirmation link has expired; please subscribe again")
        return ConfirmLink(subscriber_id, signup)


def new_signup_nonce() -> str:
    """A fresh signup nonce for a confirmation link: 72 random bits."""
    return secrets.token_urlsafe(9)


def _keys(secret: str | bytes, name: str) -> tuple[hmac.HMAC, hmac.HMAC]:
    """The unsubscribe and confirm keys derived from ``secret``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise TokenError(f"{name}: the token secret must not be empty")
    return (
        hmac.new(_derive(key, b"unsubscribe"), digestmod=hashlib.sha256),
        hmac.new(_derive(key, b"confirm"), digestmod=hashlib.sha256),
    )


def _signed(mac: str, payload: str, current: hmac.HMAC, previous: tuple[hmac.HMAC, ...]) -> bool:
    """``mac`` is the current key's for ``payload``, or the previous one's.
    Every key is tried, so the time taken does not tell which one matched."""
    matches = [hmac.compare_digest(mac, _mac(key, payload)) for key in (current, *previous)]
    return any(matches)


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, b"publish-subscribers/" + purpose, hashlib.sha256).digest()


def _mac(base: hmac.HMAC, payload: str) -> str:
    mac = base.copy()
    mac.update(payload.encode("ascii"))
    return base64.urlsafe_b64encode(mac.digest()[:_MAC_BYTES]).rstrip(b"=").decode("ascii")


def _split(token: str, count: int) -> list[str]:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN or not token.isascii():
        raise TokenError("this link is not valid")
    parts = token.split(".")
    if len(parts) != count or not all(parts):
        raise TokenError("this link is not valid; it may be incomplete")
    return parts


def _id(text: str) -> int:
    if not text.isdigit() or len(text) > 19 or (len(text) > 1 and text[0] == "0"):
        raise TokenError("this link is not valid")
    return int(text)


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


# ---------------------------------------------------------------------------
# Where the secret comes from
# ---------------------------------------------------------------------------


def resolve_secret(
    configured: str,
    secret_file: Path,
    database_url: str,
    bind_host: str | None,
) -> str:
    """The token secret for this newsletter.

    ``configured`` (``NEWSLETTER_TOKEN_SECRET``, as the caller's settings
    read it) when it is set. Otherwise, only for the
    embedded demo (an SQLite database, served on a loopback address or not
    served at all), a random secret kept in ``secret_file`` (mode 0600),
    made on first use. Anything else, PostgreSQL or a public host, must be
    given a secret: links signed with a secret that lives in one checkout
    would break when the service moves, and would be guessable if it leaked.
    """
    configured = configured.strip()
    if configured:
        return check_secret(configured, SECRET_ENV)
    where = _non_demo_reason(database_url, bind_host)
    if where:
        raise TokenError(
            f"{SECRET_ENV} is not set: it is required with {where} (make one with: {MAKE_ONE})"
        )
    return _local_secret(secret_file)


def resolve_previous_secret(configured: str) -> str:
    """The previous token secret of a rotation (``NEWSLETTER_TOKEN_SECRET_PREVIOUS``,
    as the caller's settings read it), checked like the current one; "" when
    there is none. Links signed with it are still read, none are made."""
    configured = configured.strip()
    return check_secret(configured, PREVIOUS_SECRET_ENV) if configured else ""


def check_secret(secret: str, name: str = SECRET_ENV) -> str:
    """``secret`` if it is long and random enough to sign links, else
    :class:`TokenError` naming ``name`` and saying how to make a good one."""
    if len(secret) < MIN_SECRET_LENGTH:
        problem = f"too short; use at least {MIN_SECRET_LENGTH} random characters"
    elif len(set(secret)) < MIN_DISTINCT:
        problem = f"too weak: fewer than {MIN_DISTINCT} different characters"
    elif (bits := estimated_bits(secret)) < MIN_SECRET_BITS:
        problem = (
            f"too weak: about {bits:.0f} bits of randomness, at least {MIN_SECRET_BITS} needed"
        )
    else:
        return secret
    raise TokenError(f"{name}: {problem} (make one with: {MAKE_ONE})")


_ANALYSED = 256  # characters: a secret's strength shows well before that


def estimated_bits(secret: str) -> float:
    """A rough, cautious estimate of the randomness in ``secret``, in bits.

    Shannon entropy per character (from the secret's own character
    frequencies) times the number of characters that bring something new:
    a character that repeats something seen before (three or more in a row,
    as in ``passwordpassword`` or ``abcabcabc``) or continues a run
    (``abcd``, ``4321``) adds nothing. ``secrets.token_urlsafe(32)`` scores
    about 200; ``aaaaaaaaaaaaaaaaaaaa`` 0.
    """
    text = secret[:_ANALYSED]
    if not text:
        return 0.0
    total = len(text)
    per_character = -sum(
        count / total * math.log2(count / total) for count in Counter(text).values()
    )
    return per_character * _novel_characters(text)


def _novel_characters(text: str) -> int:
    """How many characters of ``text`` are neither part of a repeat of
    earlier text (three characters or more) nor the continuation of a run."""
    novel = 0
    index = 0
    while index < len(text):
        repeat = _longest_repeat(text, index)
        if repeat >= 3:
            index += repeat
            continue
        if index >= 2:
            step = ord(text[index]) - ord(text[index - 1])
            if step in (-1, 1) and ord(text[index - 1]) - ord(text[index - 2]) == step:
                index += 1
                continue
        novel += 1
        index += 1
    return novel


def _longest_repeat(text: str, index: int) -> int:
    """The length of the longest match of ``text[index:]`` that starts
    earlier in ``text`` (it may run into the part it matches, as LZ77's do)."""
    longest = 0
    for start in range(index):
        length = 0
        while index + length < len(text) and text[start + length] == text[index + length]:
            length += 1
        longest = max(longest, length)
    return longest


def _non_demo_reason(database_url: str, bind_host: str | None) -> str:
    if not database_url.strip().lower().startswith("sqlite"):
        return "a database other than the embedded SQLite"
    if bind_host is not None and not is_loopback(bind_host):
        return f"a public host ({bind_host})"
    return ""


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _local_secret(path: Path) -> str:
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    # Written aside and linked into place: the link fails if another process
    # got there first, and nobody ever reads a half-written secret.
    secret = secrets.token_urlsafe(32)
    try:
        with atomic_text(path, mode=PRIVATE, exclusive=True, encoding="ascii") as handle:
            handle.write(secret + "\n")
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise TokenError(f"{path}: cannot keep the local token secret: {exc.strerror}") from None
    log.info("made a local token secret in %s", path)
    return secret


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        raise TokenError(f"{path}: not a token secret; delete it to make a new one") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the local token secret: {exc.strerror}") from None
    try:
        check_secret(text, str(path))
    except TokenError:
        raise TokenError(
            f"{path}: too weak to be a token secret; delete it to make a new one"
        ) from None
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return text
