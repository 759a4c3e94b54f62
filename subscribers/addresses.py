"""The one way an email address is written: where it is stored, compared,
configured and mailed.

    normalize_address("Dana@Faß.de ")  ->  "Dana@xn--fa-hia.de"
      ├── ascii_domain(domain)          the domain: lowercase, IDNA 2008
      └── email-validator's rules       ASCII local part, no quoting, a dot in
                                        the domain, at most 254 characters
    normalize_email(text)               the same for the store, the form and
                                        imports: messages name the field ``email``
    EmailNormalizer()(text)             normalize_email for an import: each
                                        distinct domain validated once, the
                                        local part by a pattern match
    ascii_address(address)              an address as a header and an SMTP
                                        envelope carry it, checked per
                                        recipient at a few microseconds

The settings (``sender.from``, naming their key in the message), the store
and the SES feedback it reads all go through :func:`normalize_address`;
``--test-to``, Message-IDs and the hosts of the links in a message through
:func:`ascii_domain`, so an address is the same everywhere.

:func:`ascii_domain` does what email-validator does to a domain: UTS #46
mapping (lowercase, NFC, compatibility forms and full stops folded;
non-transitional, so ``ß`` stays ``ß``), then IDNA 2008 A-labels. Python's
``"idna"`` codec is IDNA 2003, which would turn ``faß.de`` into
``fass.de``: another domain, someone else's.

A local part that is not ASCII is refused everywhere: Amazon SES and most
relays cannot deliver it (it needs SMTPUTF8).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, NamedTuple

from subscribers.errors import InvalidDomain, InvalidEmail, UndeliverableAddress
from subscribers.plain_address import plain_address

MAX_EMAIL = 320
"""The longest address the store reads (its column's size)."""

_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+")


def ascii_domain(domain: str) -> str:
    """``domain`` as mail and URLs carry it; :class:`InvalidDomain` if IDNA
    2008 refuses it. An ASCII domain without ``xn--`` labels is only
    lowercased, as UTS #46 would (the idna package is not even imported):
    its syntax is for the caller to check, as email-validator does."""
    if domain.isascii() and "xn--" not in domain.lower():
        return domain.lower()
    import idna  # its tables take milliseconds to load: only when needed

    try:
        return idna.encode(domain, uts46=True).decode("ascii")  # non-transitional
    except UnicodeError as exc:  # idna.IDNAError is one
        raise InvalidDomain(f"the domain {domain!r} is not valid: {exc}") from None


def normalize_address(text: str) -> str:
    """``text`` (surrounding spaces ignored) as an address is stored and
    mailed: validated by email-validator's rules, the domain written by
    :func:`ascii_domain` (no lookups in DNS), the local part as given.

    Raises :class:`InvalidDomain` for a domain IDNA 2008 refuses, and
    :class:`InvalidEmail` saying what is wrong in words that name neither
    the address nor where it came from: the caller names those.
    """
    candidate = text.strip()
    local, at, domain = candidate.rpartition("@")
    if at:
        candidate = f"{local}@{ascii_domain(domain)}"
    plain = plain_address(candidate)  # the usual address, without loading email-validator
    if plain is not None:
        return plain
    validate_email, EmailNotValidError = _validator()
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return str(result.ascii_email)


def normalize_email(text: str) -> str:
    """:func:`normalize_address` for the store, the signup form and imports,
    at most :data:`MAX_EMAIL` characters. :class:`InvalidEmail` names the
    field: ``email: 'x' is not valid: ...``."""
    candidate = text.strip()
    if not candidate:
        raise InvalidEmail("email: must not be empty")
    if len(candidate) > MAX_EMAIL:
        raise InvalidEmail(f"email: longer than {MAX_EMAIL} characters")
    try:
        return normalize_address(candidate)
    except (InvalidEmail, InvalidDomain) as exc:
        raise InvalidEmail(f"email: {_shorten(candidate)!r} is not valid: {exc}") from None


class EmailNormalizer:
    """:func:`normalize_email` for the rows of one import, each distinct
    domain validated once.

    The usual address (a plain dot-atom local part, as most are) takes a
    short path: the local part is matched against email-validator's own
    pattern, the domain looked up among those already seen, and the lengths
    email-validator checks are summed. Everything else (a quoted or
    non-ASCII local part, a role mailbox such as ``Info@`` that
    email-validator lowercases, a domain it refuses, an address near the
    length limits) goes through :func:`normalize_email` itself, so the
    verdict and every message are the same as without the cache.
    """

    LIMIT = 100_000
    """Distinct domains remembered; past it the cache starts again (memory
    stays bounded whatever the file)."""

    def __init__(self) -> None:
        from email_validator.rfc_constants import (
            CASE_INSENSITIVE_MAILBOX_NAMES,
            DOT_ATOM_TEXT,
            EMAIL_MAX_LENGTH,
        )

        self._plain_local = DOT_ATOM_TEXT.match
        self._role_mailboxes = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
        self._longest = EMAIL_MAX_LENGTH
        self._domains: dict[str, _Domain | None] = {}

    def __call__(self, text: str) -> str:
        candidate = text.strip()
        local, at, domain = candidate.rpartition("@")
        if (
            at
            and len(candidate) <= MAX_EMAIL
            and self._plain_local(local)
            and local.lower() not in self._role_mailboxes
        ):
            known = self._domains.get(domain, _UNSEEN)
            if known is _UNSEEN:
                known = self._domain(domain)
            if known is not None and len(local) + known.longest <= self._longest:
                return f"{local}@{known.ascii}"
        return normalize_email(text)

    def _domain(self, domain: str) -> _Domain | None:
        """What email-validator makes of ``domain`` once :func:`ascii_domain`
        has written it, as it does for any plain local part; None to take
        the long path for it (refused, or too long for even ``a@``)."""
        if len(self._domains) >= self.LIMIT:
            self._domains.clear()
        validate_email, EmailNotValidError = _validator()
        try:
            given = ascii_domain(domain)
            result = validate_email(f"a@{given}", check_deliverability=False, allow_smtputf8=False)
        except (InvalidDomain, EmailNotValidError):
            known = None
        else:
            forms = (given, str(result.domain), str(result.ascii_domain))
            longest = max(len(form.encode("utf-8")) for form in forms)
            known = _Domain(str(result.ascii_domain), longest + 1)
        self._domains[domain] = known
        return known


class _Domain(NamedTuple):
    ascii: str
    """The domain as the address is stored."""
    longest: int
    """``@`` and the longest form of the domain whose length email-validator
    checks (as given to it, normalized, IDNA ASCII), in UTF-8 bytes."""


_UNSEEN = _Domain("", 0)


@cache
def _validator() -> tuple[Any, type[Exception]]:
    # Imported on first use (it loads idna's tables), once: imports are not
    # free in a loop over a hundred thousand rows.
    from email_validator import EmailNotValidError, validate_email

    return validate_email, EmailNotValidError


def ascii_address(address: str) -> str:
    """``address`` as it can stand in a header and an SMTP envelope, or
    :class:`UndeliverableAddress` saying why not.

    The domain is written as :func:`normalize_address` writes it; the rest
    is a plain pattern match, cheap enough for every recipient of a send
    (their addresses were validated when they were stored).
    """
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise UndeliverableAddress(f"{address}: a non-ASCII mailbox name needs SMTPUTF8")
    try:
        address = f"{local}@{ascii_domain(domain)}"
    except InvalidDomain as exc:
        raise UndeliverableAddress(f"{address!r}: {exc}") from None
    if not _PLAIN_ADDRESS.fullmatch(address) or len(address) > 254:
        raise UndeliverableAddress(f"{address!r} is not an address this newsletter can mail")
    return address


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
