"""The web service's limits and whom it believes, by default.

Plain values, kept apart from the store's models so that reading the
settings (which default to them) imports nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """At most ``count`` events in any ``seconds``-long window."""

    count: int
    seconds: float


SIGNUPS_PER_IP = Limit(10, 600)
"""Signup requests the web service takes from one client network (an IPv4
address, an IPv6 /64)."""
CONFIRMATIONS_PER_ADDRESS = Limit(3, 3600)
"""Confirmation messages one mailbox (:func:`mailbox_key`) gets, however
often it is entered and however it is spelled."""
CONFIRMATIONS_PER_DOMAIN = Limit(10, 60)
"""Confirmation messages to one domain, big providers included, before the
rest wait for the next minute."""
CONFIRMATIONS_AFTER_REPORT = Limit(1, 30 * 86400)
"""Confirmation messages from the form to a mailbox that complained or
bounced (permanently) before."""
TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128")
"""Whose ``X-Forwarded-For`` is believed by default: the loopback addresses,
where the proxy the README prescribes runs."""
