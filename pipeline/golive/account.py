"""What the SES account already has for this newsletter, read without
changing anything: the one view that ``publish setup ses`` plans from and
``publish doctor`` checks.

    observe(clients, names, settings) ──> AccountState
        STS   GetCallerIdentity (the account, for ARNs and policy conditions)
        SESv2 GetEmailIdentity, GetConfigurationSet, GetAccount
        SES   GetIdentityDkimAttributes (the DKIM tokens, when SESv2 leaves
              them out), GetIdentityMailFromDomainAttributes,
              DescribeConfigurationSet, DescribeActiveReceiptRuleSet,
              DescribeReceiptRuleSet (only while no rule set is active)
        SNS   GetTopicAttributes on the topic's ARN (CreateTopic is not
              called), ListSubscriptionsByTopic
        SQS   GetQueueUrl, GetQueueAttributes

SES v1 and v2 share identities and configuration sets; v1 is read where
the v2 call is missing from moto, which the tests run against. Event types
come back in SESv2's spelling (``RENDERING_FAILURE``, not v1's
``renderingFailure``). A missing thing is None or empty, never an error;
an AWS error is one line (:func:`pipeline.golive.clients.aws_call`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.golive.clients import aws_call, aws_error, code_of
from pipeline.golive.names import Names
from pipeline.golive.policies import queue_allows_only, topic_allows_ses

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.golive.clients import Clients

NOT_FOUND = (
    "NotFoundException",
    "NotFound",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "RuleSetDoesNotExist",
)
"""The codes the services answer a read of something missing with."""


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
    """None when GetAccount could not be read."""
    rule_set_exists: bool = False
    """The rule set named for the newsletter exists; read only while no
    rule set is active (setup makes it, then activates it)."""
    inactive_receipt: ReceiptState | None = None
    """The unsubscribe rule in the newsletter's own rule set while that set
    is not active; None otherwise."""
    topic_policy: str = ""
    """The topic's policy document as SNS returns it (JSON); setup adds its
    statement to the others."""


# ---------------------------------------------------------------------------
# Reading the account
# ---------------------------------------------------------------------------


def observe(clients: Clients, names: Names, settings: Settings) -> AccountState:
    """What the account has for ``names``, read-only (see the table above).
    ``settings`` decided the names already; it is taken for what a check may
    need beyond them."""
    caller = aws_call("reading the AWS account", clients.sts.get_caller_identity)
    account_id = str(caller["Account"])
    topic_arn = arn(clients, "sns", account_id, names.topic)
    topic = _read(f"reading the SNS topic {topic_arn}", clients.sns.get_topic_attributes,
                  TopicArn=topic_arn)
    topic_policy = str((topic or {}).get("Attributes", {}).get("Policy", ""))
    exists = topic is not None
    identity = _identity(clients, names)
    configuration_set = _read(
        f"reading the configuration set {names.configuration_set}",
        clients.sesv2.get_configuration_set, ConfigurationSetName=names.configuration_set,
    ) is not None
    active, rules = _active_rule_set(clients)
    own_rules = None if active else _own_rules(clients, names)
    return AccountState(
        region=clients.region,
        account_id=account_id,
        identity=identity,
        mail_from=_mail_from(clients, names) if identity else None,
        configuration_set=configuration_set,
        destination=_destination(clients, names, topic_arn) if configuration_set else None,
        topic_arn=topic_arn if exists else "",
        topic_allows_ses=exists and topic_allows_ses(topic_policy, account_id),
        subscriptions=_subscriptions(clients, topic_arn) if exists else (),
        queue=_queue(clients, names.queue, topic_arn if exists else ""),
        dead_letter_queue_arn=_queue_arn(clients, names.dead_letter_queue),
        receipt=_receipt(active, rules, names, topic_arn) if active else None,
        active_rule_set=active,
        quota=_quota(clients),
        rule_set_exists=own_rules is not None,
        inactive_receipt=_receipt(names.rule_set, own_rules, names, topic_arn)
        if own_rules is not None else None,
        topic_policy=topic_policy,
    )


def arn(clients: Clients, service: str, account_id: str, name: str) -> str:
    """The ARN AWS gives a topic or queue of that name in this account and region."""
    return f"arn:{clients.partition}:{service}:{clients.region}:{account_id}:{name}"


def v2_event_type(v1: str) -> str:
    """``renderingFailure`` (SES v1) → ``RENDERING_FAILURE`` (SESv2)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", v1).upper()


def v1_event_type(v2: str) -> str:
    """``RENDERING_FAILURE`` (SESv2) → ``renderingFailure`` (SES v1)."""
    first, *rest = v2.lower().split("_")
    return first + "".join(word.capitalize() for word in rest)


def _read(description: str, fn: Any, **params: Any) -> Any:
    """``fn(**params)``, or None when what it reads does not exist."""
    try:
        return fn(**params)
    except Exception as exc:
        if code_of(exc) in NOT_FOUND:
            return None
        raise aws_error(description, exc, fn) from None


def _pages(description: str, client: Any, operation: str, **params: Any) -> list[Any]:
    """Every page of a listing call."""
    try:
        return list(client.get_paginator(operation).paginate(**params))
    except Exception as exc:
        raise aws_error(description, exc, getattr(client, operation)) from None


def _identity(clients: Clients, names: Names) -> IdentityState | None:
    found = _read(f"reading the SES identity {names.domain}",
                  clients.sesv2.get_email_identity, EmailIdentity=names.domain)
    if found is None:
        return None
    dkim = found.get("DkimAttributes") or {}
    tokens = tuple(dkim.get("Tokens") or ())
    if not tokens:
        legacy = aws_call(f"reading the DKIM tokens of {names.domain}",
                          clients.ses.get_identity_dkim_attributes, Identities=[names.domain])
        tokens = tuple(legacy.get("DkimAttributes", {}).get(names.domain, {}).get("DkimTokens", ()))
    return IdentityState(
        verified=bool(found.get("VerifiedForSendingStatus")),
        dkim_status=str(dkim.get("Status") or "NOT_STARTED"),
        dkim_tokens=tokens,
    )


def _mail_from(clients: Clients, names: Names) -> MailFromState | None:
    answer = aws_call(f"reading the MAIL FROM domain of {names.domain}",
                      clients.ses.get_identity_mail_from_domain_attributes,
                      Identities=[names.domain])
    found = answer.get("MailFromDomainAttributes", {}).get(names.domain, {})
    if not found.get("MailFromDomain"):
        return None
    return MailFromState(str(found["MailFromDomain"]), str(found.get("MailFromDomainStatus") or ""))


def _destination(clients: Clients, names: Names, topic_arn: str) -> DestinationState | None:
    """The SNS destination publishing to our topic, else the one with our
    name, else the first SNS one."""
    answer = aws_call(f"reading the event destinations of {names.configuration_set}",
                      clients.ses.describe_configuration_set,
                      ConfigurationSetName=names.configuration_set,
                      ConfigurationSetAttributeNames=["eventDestinations"])
    found = [
        DestinationState(
            name=str(item.get("Name", "")),
            enabled=bool(item.get("Enabled")),
            event_types=tuple(v2_event_type(t) for t in item.get("MatchingEventTypes", ())),
            topic_arn=str(item.get("SNSDestination", {}).get("TopicARN", "")),
        )
        for item in answer.get("EventDestinations") or ()
        if isinstance(item, dict) and item.get("SNSDestination")
    ]
    ranked = sorted(found, key=lambda d: (d.topic_arn != topic_arn,
                                          d.name != names.event_destination))
    return ranked[0] if ranked else None


def _subscriptions(clients: Clients, topic_arn: str) -> tuple[SubscriptionState, ...]:
    pages = _pages(f"reading the subscriptions of {topic_arn}", clients.sns,
                   "list_subscriptions_by_topic", TopicArn=topic_arn)
    return tuple(
        SubscriptionState(str(item.get("Protocol", "")), str(item.get("Endpoint", "")),
                          str(item.get("SubscriptionArn", "")))
        for page in pages
        for item in page.get("Subscriptions", ())
    )


def _queue_attributes(clients: Clients, name: str) -> tuple[str, dict[str, str]] | None:
    found = _read(f"reading the SQS queue {name}", clients.sqs.get_queue_url, QueueName=name)
    if found is None:
        return None
    url = str(found["QueueUrl"])
    answer = aws_call(f"reading the SQS queue {url}", clients.sqs.get_queue_attributes,
                      QueueUrl=url, AttributeNames=["QueueArn", "Policy", "RedrivePolicy"])
    return url, dict(answer.get("Attributes", {}))


def _queue(clients: Clients, name: str, topic_arn: str) -> QueueState | None:
    found = _queue_attributes(clients, name)
    if found is None:
        return None
    url, attributes = found
    try:
        redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
        count = int(redrive.get("maxReceiveCount") or 0)
    except (ValueError, TypeError, AttributeError):
        redrive, count = {}, 0
    return QueueState(
        url=url,
        arn=attributes.get("QueueArn", ""),
        allows_only_topic=queue_allows_only(attributes.get("Policy", ""), topic_arn),
        dead_letter_arn=str(redrive.get("deadLetterTargetArn") or ""),
        max_receive_count=count,
    )


def _queue_arn(clients: Clients, name: str) -> str:
    found = _queue_attributes(clients, name)
    return found[1].get("QueueArn", "") if found else ""


def _active_rule_set(clients: Clients) -> tuple[str, list[dict[str, Any]]]:
    answer = aws_call("reading the active receipt rule set",
                      clients.ses.describe_active_receipt_rule_set)
    name = str((answer.get("Metadata") or {}).get("Name") or "")
    return name, list(answer.get("Rules") or ()) if name else []


def _own_rules(clients: Clients, names: Names) -> list[dict[str, Any]] | None:
    found = _read(f"reading the receipt rule set {names.rule_set}",
                  clients.ses.describe_receipt_rule_set, RuleSetName=names.rule_set)
    return None if found is None else list(found.get("Rules") or ())


def _receipt(
    rule_set: str, rules: list[dict[str, Any]], names: Names, topic_arn: str
) -> ReceiptState | None:
    """Our rule by name, else a rule for the receiving domain publishing to our topic."""
    states = [
        ReceiptState(
            rule_set=rule_set,
            rule=str(rule.get("Name", "")),
            recipients=tuple(str(r) for r in rule.get("Recipients") or ()),
            topic_arn=next(
                (str(a["SNSAction"].get("TopicArn", "")) for a in rule.get("Actions") or ()
                 if isinstance(a, dict) and isinstance(a.get("SNSAction"), dict)),
                "",
            ),
            enabled=bool(rule.get("Enabled")),
        )
        for rule in rules
        if isinstance(rule, dict)
    ]
    for state in states:
        if state.rule == names.rule:
            return state
    for state in states:
        if names.receive_domain in state.recipients and state.topic_arn == topic_arn:
            return state
    return None


def _quota(clients: Clients) -> QuotaState | None:
    try:
        account = clients.sesv2.get_account()
    except Exception as exc:
        if code_of(exc):  # AWS answered, but not with the quota
            return None
        raise aws_error("reading the sending quota", exc, clients.sesv2.get_account) from None
    quota = account.get("SendQuota") or {}
    return QuotaState(
        sandbox=not account.get("ProductionAccessEnabled", False),
        sending_enabled=bool(account.get("SendingEnabled", False)),
        max_24_hour_send=float(quota.get("Max24HourSend") or 0),
        max_send_rate=float(quota.get("MaxSendRate") or 0),
        sent_last_24_hours=float(quota.get("SentLast24Hours") or 0),
    )
