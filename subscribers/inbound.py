"""Mail to the unsubscribe addresses: the readers it takes off the list.

List-Unsubscribe offers each reader ``unsubscribe+TOKEN@`` the newsletter's
unsubscribe domain (:mod:`subscribers.unsubscribe_address`). An SES receipt
rule for that domain publishes each message it receives to an SNS topic,
which reaches the events path like any SES notification (the SQS queue of
`publish events sync`, or ``POST /ses/events``), parsed into a
:class:`~subscribers.notifications.Received`::

    Received.recipients ──> UnsubscribeMailbox.subscriber_ids ──> unsubscribe_by_mail
                            (token checked, the domain ours)       (each in a transaction)

Only the envelope recipients the rule matched count, never the headers. A
reader whose token is valid is unsubscribed as the one-click link does it,
and the change is recorded in their history ``via`` ``mailto`` under the
SES message id, so a notification delivered again changes nothing, even
for a reader who came back since. A reader who has left already is left
alone. A recipient without a valid token or at another domain, and mail
SES found a virus in, change nothing: they are logged (without the
address) and the notification is done with, not kept as unreadable.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from subscribers.errors import TokenError
from subscribers.models import EventKind, Status
from subscribers.notifications import Received
from subscribers.tokens import Signer
from subscribers.unsubscribe_address import read

if TYPE_CHECKING:
    from subscribers.store import Store, Transaction

log = logging.getLogger(__name__)

VIA = "mailto"
"""How the history says the reader left (the link says ``unsubscribe link``)."""
MAX_EXTERNAL_ID = 300  # subscriber_events.external_id
CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class UnsubscribeMailbox:
    """The unsubscribe domain (as :func:`~subscribers.addresses.ascii_domain`
    writes it) and the signer whose tokens its addresses carry."""

    signer: Signer
    domain: str

    def subscriber_ids(self, received: Received) -> list[int]:
        """The readers whose valid unsubscribe address the mail was sent to,
        each once, in the order SES lists them."""
        found: list[int] = []
        strangers = 0
        for recipient in received.recipients:
            try:
                subscriber_id = read(self.signer, recipient, self.domain)
            except TokenError:
                strangers += 1
                continue
            if subscriber_id not in found:
                found.append(subscriber_id)
        if strangers:
            log.info(
                "mail %s: %d recipients are not valid unsubscribe addresses; nothing to do",
                received.message_id[:100],
                strangers,
            )
        return found


def unsubscribe_by_mail(
    store: Store, mailbox: UnsubscribeMailbox | None, received: Received | None
) -> int:
    """Unsubscribe the readers the received mail was for; how many left the
    list (0 for a notification that is not received mail)."""
    if received is None:
        return 0
    if mailbox is None or not mailbox.domain:
        log.info(
            "mail %s received, but no unsubscribe domain is set "
            "(sender.unsubscribe_domain); nothing to do",
            received.message_id[:100],
        )
        return 0
    if received.virus == "FAIL":
        log.info("mail %s carries a virus, SES says; nothing to do", received.message_id[:100])
        return 0
    left = 0
    for subscriber_id in mailbox.subscriber_ids(received):
        work = partial(_unsubscribe, subscriber_id=subscriber_id, received=received)
        if store.retrying(work, CONFLICT_RETRIES):
            left += 1
    if left:
        log.info("mail %s: %d unsubscribed by mail", received.message_id[:100], left)
    return left


def _unsubscribe(tx: Transaction, *, subscriber_id: int, received: Received) -> bool:
    """Take the reader off the list, as :meth:`Store.unsubscribe` does, the
    event recorded under the SES message's id; False if this message did
    that already, or they have left."""
    key = _external_id(received.message_id, subscriber_id)
    if tx.has_external_id(key):
        return False
    subscriber = tx.get(subscriber_id, lock=True)
    if subscriber is None or subscriber.status.has_left:
        return False
    tx.set_status(subscriber, Status.UNSUBSCRIBED, None)
    tx.add_event(
        subscriber.id,
        EventKind.UNSUBSCRIBED,
        {"from": str(subscriber.status), "via": VIA, "message_id": received.message_id},
        external_id=key,
    )
    return True


def _external_id(message_id: str, subscriber_id: int) -> str:
    """The key the event is recorded under: the SES message and the reader
    (hashed when too long for the column, which a hostile message may try)."""
    key = f"mailto:{message_id}:{subscriber_id}"
    if len(key) <= MAX_EXTERNAL_ID:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
