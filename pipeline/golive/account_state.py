"""What :func:`pipeline.golive.account.observe` read from the SES account:
plain frozen data, one class a thing, :class:`AccountState` the whole.

A missing thing is None, empty or False. A thing ``publish doctor`` could
not read (AWS refused or failed the call) is named in
:attr:`AccountState.unread`; its fields keep those same empty values, so
:meth:`AccountState.known` tells "missing" from "not read". ``publish
setup`` never sees an unread state: it stops at the first failed read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unread:
    """One read that failed, and what could not be known without it."""

    subject: str
    """The doctor's name for what it would have checked: ``SNS topic``."""
    description: str
    """What was being read: ``reading the SNS topic arn:...``."""
    problem: str
    """AWS's answer in one line: ``AccessDenied: User: ... (GetTopicAttributes)``."""
    refusal: str
    """:func:`pipeline.golive.clients.aws_error`'s one line for it; names the
    IAM action to add when ``denied``."""
    denied: bool
    """IAM refused the call (AccessDenied and its kin)."""
    unknown: str
    """In words: ``the topic, its policy and its subscriptions``."""
    fields: tuple[str, ...]
    """The :class:`AccountState` fields left unknown (``dkim_tokens``: the
    identity's tokens)."""


@dataclass(frozen=True)
class IdentityState:
    verified: bool
    """SES may send from the domain (VerifiedForSendingStatus)."""
    dkim_status: str
    """SESv2's DkimAttributes.Status: SUCCESS, PENDING, FAILED, TEMPORARY_FAILURE, NOT_STARTED."""
    dkim_tokens: tuple[str, ...]
    """The three Easy DKIM tokens: ``TOKEN._domainkey.DOMAIN CNAME TOKEN.dkim.amazonses.com``."""


@dataclass(frozen=True)
class MailFromState:
    domain: str
    status: str
    """Pending, Success, Failed or TemporaryFailure."""


@dataclass(frozen=True)
class DestinationState:
    name: str
    enabled: bool
    event_types: tuple[str, ...]
    """In SESv2's spelling (:data:`pipeline.golive.names.EVENT_TYPES`)."""
    topic_arn: str
    """The SNS topic it publishes to; empty for another kind of destination."""


@dataclass(frozen=True)
class SubscriptionState:
    protocol: str
    """``sqs``, ``https``..."""
    endpoint: str
    """The queue's ARN, or the URL."""
    arn: str
    """``PendingConfirmation`` until an https endpoint confirms it."""

    @property
    def pending(self) -> bool:
        return not self.arn.startswith("arn:")


@dataclass(frozen=True)
class QueueState:
    url: str
    arn: str
    allows_only_topic: bool
    """Its policy lets the topic (and only it) SendMessage."""
    dead_letter_arn: str
    """The redrive policy's target; empty without one."""
    max_receive_count: int = 0
    """Receives before the redrive policy moves a message; 0 without one."""


@dataclass(frozen=True)
class ReceiptState:
    rule_set: str
    """The active receipt rule set's name."""
    rule: str
    recipients: tuple[str, ...]
    topic_arn: str
    """The topic its SNS action publishes to; empty without one."""
    enabled: bool


@dataclass(frozen=True)
class QuotaState:
    sandbox: bool
    sending_enabled: bool
    max_24_hour_send: float
    max_send_rate: float
    sent_last_24_hours: float


@dataclass(frozen=True)
class AccountState:
    region: str
    account_id: str
    identity: IdentityState | None
    """None: no identity for the sending domain."""
    mail_from: MailFromState | None
    configuration_set: bool
    """The configuration set exists."""
    destination: DestinationState | None
    """The configuration set's event destination that publishes to SNS."""
    topic_arn: str
    """The topic named for the newsletter; empty when it does not exist."""
    topic_allows_ses: bool
    """The topic's policy lets SES (this account's) publish to it."""
    subscriptions: tuple[SubscriptionState, ...]
    """The topic's subscriptions."""
    queue: QueueState | None
    dead_letter_queue_arn: str
    """The dead-letter queue named for the newsletter; empty when missing."""
    receipt: ReceiptState | None
    """The unsubscribe receipt rule in the active rule set; None without one."""
    active_rule_set: str
    """The active receipt rule set's name; empty when none is active."""
    quota: QuotaState | None
    """None when SES answered GetAccount with an error (a refusal too)."""
    rule_set_exists: bool = False
    """The rule set named for the newsletter exists; read only while no
    rule set is active (setup makes it, then activates it)."""
    inactive_receipt: ReceiptState | None = None
    """The unsubscribe rule in the newsletter's own rule set while that set
    is not active; None otherwise."""
    topic_policy: str = ""
    """The topic's policy document as SNS returns it (JSON); setup adds its
    statement to the others."""
    service_configuration_set: bool = False
    """The service set (:mod:`pipeline.golive.names`) exists; not read by
    ``publish doctor`` while tracking is off."""
    service_destination: DestinationState | None = None
    """The service set's event destination that publishes to SNS."""
    unread: tuple[Unread, ...] = ()
    """The reads that failed (``publish doctor`` only), in the order made."""

    def known(self, *fields: str) -> bool:
        """Every one of ``fields`` was read (it may still be missing)."""
        return not any(name in item.fields for item in self.unread for name in fields)
