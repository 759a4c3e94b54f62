"""Signed tokens for the links in subscription mail.

    unsubscribe   ``<id>.<mac>``              never expires; the same for a
                                              subscriber every time, so it can
                                              sit in every issue they receive
    confirm       ``<id>.<issued>.<mac>``     expires after seven days

``mac`` is HMAC-SHA256 over the purpose and the fields, truncated to 128 bits
and written in base64url without padding. Each purpose has its own key,
derived from the one secret, so a token made for one purpose never passes as
the other. Signing an unsubscribe token costs one HMAC (a few microseconds):
the sender makes one per recipient.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import tempfile
from pathlib import Path

from subscribers.errors import TokenError

log = logging.getLogger(__name__)

SECRET_ENV = "NEWSLETTER_TOKEN_SECRET"  # noqa: S105 - the variable's name
MIN_SECRET_LENGTH = 16
CONFIRM_LIFETIME = dt.timedelta(days=7)
_MAC_BYTES = 16
_MAX_TOKEN = 100
_CLOCK_SKEW = dt.timedelta(minutes=5)


class ExpiredToken(TokenError):
    """A genuine confirmation link that is too old to use."""


class Signer:
    """Makes and reads confirm and unsubscribe tokens with one secret."""

    __slots__ = ("_confirm", "_unsubscribe")

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not key:
            raise TokenError(f"{SECRET_ENV}: the token secret must not be empty")
        self._unsubscribe = hmac.new(_derive(key, b"unsubscribe"), digestmod=hashlib.sha256)
        self._confirm = hmac.new(_derive(key, b"confirm"), digestmod=hashlib.sha256)

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
        if not hmac.compare_digest(parts[1], _mac(self._unsubscribe, parts[0])):
            raise TokenError("this unsubscribe link is not valid; it may be incomplete")
        return subscriber_id

    # -- confirm -------------------------------------------------------------

    def confirm(self, subscriber_id: int, issued_at: dt.datetime | None = None) -> str:
        issued = int((issued_at or dt.datetime.now(dt.UTC)).timestamp())
        payload = f"{subscriber_id}.{_b36(issued)}"
        return f"{payload}.{_mac(self._confirm, payload)}"

    def read_confirm(self, token: str, now: dt.datetime | None = None) -> int:
        """The subscriber id in ``token``; :class:`TokenError` if it was not
        made here, :class:`ExpiredToken` if it is more than seven days old."""
        parts = _split(token, 3)
        subscriber_id = _id(parts[0])
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(parts[2], _mac(self._confirm, payload)):
            raise TokenError("this confirmation link is not valid; it may be incomplete")
        try:
            issued = dt.datetime.fromtimestamp(int(parts[1], 36), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise TokenError("this confirmation link is not valid") from None
        current = now or dt.datetime.now(dt.UTC)
        if issued > current + _CLOCK_SKEW:
            raise TokenError("this confirmation link is not valid")
        if current - issued > CONFIRM_LIFETIME:
            raise ExpiredToken("this confirmation link has expired; please subscribe again")
        return subscriber_id


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
        if len(configured) < MIN_SECRET_LENGTH:
            raise TokenError(
                f"{SECRET_ENV}: too short; use at least {MIN_SECRET_LENGTH} random characters"
            )
        return configured
    where = _non_demo_reason(database_url, bind_host)
    if where:
        raise TokenError(
            f"{SECRET_ENV} is not set: it is required with {where} "
            f"(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return _local_secret(secret_file)


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
        fd, tmp = tempfile.mkstemp(prefix=".secret.", dir=path.parent)  # mode 0600
    except OSError as exc:
        raise TokenError(f"{path}: cannot keep the local token secret: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return _read_secret(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
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
    if len(text) < MIN_SECRET_LENGTH:
        raise TokenError(f"{path}: too short to be a token secret; delete it to make a new one")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return text
