"""SES Open and Click events, read into plain :class:`Interaction` values.

Configuration-set event publishing reports a reader's mail client loading
the tracking image (``"eventType": "Open"``, with ``open.userAgent`` and
``open.ipAddress``) and a click on a link SES rewrote (``"Click"``, with
``click.link``). :func:`read_interaction` keeps only what the counts need:
the kind, the SES message id (to find the issue in the ledger and to tell
one message's repeat opens from another's; never stored), the moment, the
normalized link, and a fingerprint of the whole event that tells a
redelivery of the same event from a new one.

Opens from a machine are told apart (``machine_open``) by
:func:`is_machine_open`: mail-privacy proxies that fetch every image of
every message whether or not anyone reads it (Apple Mail Privacy
Protection), image proxies that fetch for the reader and hide them (Gmail,
Yahoo), and scanners and scripts. The rule is a small constant, kept here:
:data:`MACHINE_AGENTS`, :data:`APPLE_PROXY_AGENT`, :data:`MACHINE_NETWORKS`.

Nothing here raises: an event that cannot be counted comes back with
``problem`` saying why, and is left out of the counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from subscribers.engagement.links import normalize_link

InteractionKind = Literal["open", "machine_open", "click"]
KINDS: tuple[InteractionKind, ...] = ("open", "machine_open", "click")
MAX_MESSAGE_ID = 300

MACHINE_AGENTS = (
    "googleimageproxy",  # Gmail fetches images through its proxy
    "ggpht.com",
    "yahoomailproxy",  # Yahoo and AOL
    "bot",
    "crawler",
    "spider",
    "headlesschrome",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "barracuda",
    "mimecast",
    "proofpoint",
)
"""Substrings of a lowercased User-Agent that mark an open as a machine's."""

APPLE_PROXY_AGENT = "mozilla/5.0"
"""Apple Mail Privacy Protection's proxies send exactly this, and nothing
more; so does an empty or missing User-Agent count as a machine."""

MACHINE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
"""Apple's own network, where its privacy proxies' fetches come from."""


@dataclass(frozen=True)
class Interaction:
    """One open or click, as the counts see it."""

    kind: InteractionKind
    message_id: str
    """SES's id of the message opened: looked up in the ledger, never stored."""
    at: dt.datetime | None
    """When, by SES's clock (None when the event did not say)."""
    fingerprint: str
    """SHA-256 of the event as SES wrote it (keys sorted): the same for a
    redelivery, different for another open of the same message."""
    link: str = ""
    """For a click, the link it is counted under (:mod:`.links`)."""
    problem: str = ""
    """Why it cannot be counted; empty when it can."""


def read_interaction(message: dict[str, Any]) -> Interaction | None:
    """The open or click in an SES event (either key spells its type); None
    for any other event."""
    kind = message.get("eventType", message.get("notificationType"))
    if kind not in ("Open", "Click"):
        return None
    fingerprint = hashlib.sha256(
        json.dumps(message, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ).hexdigest()
    detail = message.get(kind.lower())
    if not isinstance(detail, dict):
        return Interaction("click" if kind == "Click" else "open", "", None, fingerprint,
                           problem=f"{kind.lower()} is not an object")
    mail = message.get("mail")
    message_id = mail.get("messageId") if isinstance(mail, dict) else None
    at = _time(detail.get("timestamp"))
    if kind == "Open":
        machine = is_machine_open(detail.get("userAgent"), detail.get("ipAddress"))
        found = Interaction("machine_open" if machine else "open", "", at, fingerprint)
    else:
        link = normalize_link(detail.get("link"))
        found = Interaction("click", "", at, fingerprint, link=link or "",
                            problem="" if link else "the link is not an http(s) URL")
    if (not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID
            or not message_id.isprintable()):
        return replace(found, problem="no readable mail.messageId")
    return replace(found, message_id=message_id)


def is_machine_open(user_agent: object, ip_address: object) -> bool:
    """Whether an open looks like a proxy's or a program's, not a reader's."""
    agent = user_agent.strip().lower() if isinstance(user_agent, str) else ""
    if not agent or agent == APPLE_PROXY_AGENT:
        return True
    if any(marker in agent for marker in MACHINE_AGENTS):
        return True
    if isinstance(ip_address, str):
        try:
            address = ipaddress.ip_address(ip_address.strip())
        except ValueError:
            return False
        return any(address in network for network in MACHINE_NETWORKS)
    return False


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
