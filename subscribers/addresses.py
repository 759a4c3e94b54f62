"""The one way a domain is written into mail and links: IDNA 2008.

    ascii_domain("faß.de")  ->  "xn--fa-hia.de"

The store (through :func:`subscribers.models.normalize_email`), the sender's
addresses in the settings, ``--test-to``, Message-IDs and the hosts of the
links in a message all go through :func:`ascii_domain`, so an address is the
same everywhere. It does what email-validator does to a domain: UTS #46
mapping (lowercase, NFC, compatibility forms and full stops folded;
non-transitional, so ``ß`` stays ``ß``), then IDNA 2008 A-labels. Python's
``"idna"`` codec is IDNA 2003, which would turn ``faß.de`` into
``fass.de``: another domain, someone else's.
"""

from __future__ import annotations

from subscribers.errors import InvalidDomain


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
