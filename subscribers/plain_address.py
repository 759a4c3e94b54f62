"""The plain address, accepted without loading email-validator.

Loading email-validator compiles its patterns for internationalized
addresses, which takes longer than everything else `publish check` does to
its settings. Most addresses need none of that: an ASCII dot-atom local part
at an ASCII host name. :func:`plain_address` accepts exactly such an address,
returning what email-validator returns for it (``ascii_email``), and answers
None for anything else, which then goes to email-validator itself
(:func:`subscribers.addresses.normalize_address`). It never refuses an
address, so every error message stays email-validator's.

    plain_address("dana@painfreeliving.example.com")  ->  the same string
    plain_address("Info@example.com")                  ->  None (lowercased by
                                                           email-validator)

The rules below are email-validator's (2.x, ``check_deliverability=False``,
``allow_smtputf8=False``, no quoting, no domain literal, globally
deliverable) for that subset, narrowed wherever narrowing is simpler:
tests/test_addresses.py compares both on many addresses, and the constants
with email-validator's own, so an upgrade that changes a rule fails there.
"""

from __future__ import annotations

import re

ATEXT = r"a-zA-Z0-9_!#\$%&\'\*\+\-/=\?\^`\{\|\}~"
"""The characters of a dot-atom local part (RFC 5322 3.2.3), as
email-validator writes them."""
EMAIL_MAX_LENGTH = 254
DOMAIN_MAX_LENGTH = 253
DNS_LABEL_LENGTH_LIMIT = 63
CASE_INSENSITIVE_MAILBOX_NAMES = frozenset(
    {"info", "marketing", "sales", "support", "abuse", "noc", "security"}
    | {"postmaster", "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp"}
)
"""RFC 2142's mailboxes, which email-validator lowercases: left to it."""
SPECIAL_USE_DOMAIN_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")
"""Domains email-validator refuses, and every domain under them."""

_LOCAL = re.compile(f"[{ATEXT}]+(?:\\.[{ATEXT}]+)*")
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
"""Lowercase host names of two labels or more, as :func:`ascii_domain` writes
an ASCII domain; ``--`` (Punycode, reserved labels) is left to email-validator."""


def plain_address(candidate: str) -> str | None:
    """``candidate`` as email-validator normalizes it, if it is a plain
    address whose domain is already lowercase; else None."""
    local, at, domain = candidate.rpartition("@")
    if (
        not at
        or not candidate.isascii()
        or len(candidate) > EMAIL_MAX_LENGTH
        or len(domain) > DOMAIN_MAX_LENGTH
        or "--" in domain
        or not _LOCAL.fullmatch(local)
        or local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES
        or not _DOMAIN.fullmatch(domain)
        or not domain[-1].isalpha()  # every top-level domain ends with a letter
    ):
        return None
    if any(len(label) > DNS_LABEL_LENGTH_LIMIT for label in domain.split(".")):
        return None
    if any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES):
        return None
    return candidate


_ATOMS = f"[{ATEXT}]+(?:\\.[{ATEXT}]+)*"
_SPEC = f"{_ATOMS}@[a-zA-Z0-9-]+(?:\\.[a-zA-Z0-9-]+)*"
_NAMED = re.compile(f"((?:[a-zA-Z0-9]+ )*[a-zA-Z0-9]+) <({_SPEC})>|({_SPEC})")


def split_plain(text: str) -> tuple[str, str] | None:
    """``(name, address)`` of ``Name <address>`` or of a bare address, as
    ``email.utils.parseaddr`` splits it, when both parts are plain (words of
    ASCII letters and digits, one space apart; a dot-atom address): the
    settings' addresses, mostly, read without importing the email package.
    None for anything else, for ``parseaddr`` to split."""
    found = _NAMED.fullmatch(text)
    if found is None:
        return None
    name, named, bare = found.groups()
    return (name, named) if bare is None else ("", bare)
