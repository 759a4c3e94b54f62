"""What the SES account already has for this newsletter, read without
changing anything: the one view that ``publish setup ses`` plans from and
``publish doctor`` checks.

    observe(clients, names, settings, keep_going=False, service_set=True) ──> AccountState
        STS   GetCallerIdentity (the account, for ARNs and policy conditions)
        SESv2 GetEmailIdentity, GetConfigurationSet (the service set's too,
              with ``service_set``), GetAccount
        SES   GetIdentityDkimAttributes (the DKIM tokens, when SESv2 leaves
              them out), GetIdentityMailFromDomainAttributes,
              DescribeConfigurationSet (each set's event destinations),
              DescribeActiveReceiptRuleSet,
              DescribeReceiptRuleSet (only while no rule set is active)
        SNS   GetTopicAttributes on the topic's ARN (CreateTopic is not
              called), ListSubscriptionsByTopic
        SQS   GetQueueUrl, GetQueueAttributes

SES v1 and v2 share identities and configuration sets; v1 is read where
the v2 call is missing from moto, which the tests run against. Event types
come back in SESv2's spelling (``RENDERING_FAILURE``, not v1's
``renderingFailure``). A missing thing is None or empty, never an error.

A read AWS refuses or fails is one line (:func:`pipeline.golive.clients.aws_error`):
setup stops at the first, since it must not plan over what it could not
see. With ``keep_going`` (doctor) the others are still made: each failed
read becomes an :class:`~pipeline.golive.account_state.Unread` naming the
fields it left unknown, and what depends on them is not read. GetCallerIdentity
failing stops both: without the account nothing else can be named.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipeline.golive.account_state import (
    AccountState,
    DestinationState,
    IdentityState,
    MailFromState,
    QueueState,
    QuotaState,
    ReceiptState,
    SubscriptionState,
    Unread,
)
from pipeline.golive.clients import aws_call, code_of
from pipeline.golive.names import Names
from pipeline.golive.policies import queue_allows_only, topic_allows_ses
from pipeline.golive.reads import Reads

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

TOPIC_FIELDS = ("topic_arn", "topic_allows_ses", "topic_policy", "subscriptions")
RECEIPT_FIELDS = ("receipt", "active_rule_set", "rule_set_exists", "inactive_receipt")


# ---------------------------------------------------------------------------
# Reading the account
# ---------------------------------------------------------------------------


def observe(
    clients: Clients,
    names: Names,
    settings: Settings,
    *,
    keep_going: bool = False,
    service_set: bool = True,
) -> AccountState:
    """What the account has for ``names``, read-only (see the table above).
    ``settings`` decided the names already; it is taken for what a check may
    need beyond them. ``keep_going``: a failed read (but the first) is kept
    in ``unread`` instead of raised. Without ``service_set`` the service set
    is not read (the doctor's, while tracking is off: nothing needs it)."""
    caller = aws_call("reading the AWS account", clients.sts.get_caller_identity)
    account_id = str(caller["Account"])
    reads = Reads(keep_going)
    part = reads.part
    topic_arn = arn(clients, "sns", account_id, names.topic)
    topic = part("SNS topic", "the topic, its policy and its subscriptions", TOPIC_FIELDS, None,
                 lambda: reads.call(f"reading the SNS topic {topic_arn}",
                                    clients.sns.get_topic_attributes, missing=NOT_FOUND,
                                    TopicArn=topic_arn))
    topic_policy = str((topic or {}).get("Attributes", {}).get("Policy", ""))
    exists = topic is not None
    # The queue's policy is checked against the topic's ARN even when the
    # topic could not be read: it is the ARN the topic has if it exists.
    policy_topic = topic_arn if exists or not reads.known("topic_arn") else ""
    identity = part("SES identity", "the identity, its DKIM and its MAIL FROM domain",
                    ("identity", "mail_from", "dkim_tokens"), None,
                    lambda: _identity(clients, names, reads))
    if identity is not None and not identity.dkim_tokens:
        identity = replace(identity, dkim_tokens=part(
            "SES DKIM", "the DKIM tokens", ("dkim_tokens",), (),
            lambda: _dkim_tokens(clients, names, reads)))
    configuration_set = part(
        "configuration set", "the configuration set and its event destination",
        ("configuration_set", "destination"), False,
        lambda: _set_exists(clients, names.configuration_set, reads),
    )
    service = names.service_configuration_set
    service_exists = part(
        "service configuration set", "the service configuration set and its event destination",
        ("service_configuration_set", "service_destination"), False,
        lambda: _set_exists(clients, service, reads),
    ) if service_set else False
    no_rules: tuple[str, list[dict[str, Any]]] = ("", [])
    active, rules = part("receipt rule", "the active receipt rule set and its rules",
                         RECEIPT_FIELDS, no_rules, lambda: _active_rule_set(clients, reads))
    own_rules = None
    if not active and reads.known("active_rule_set"):
        own_rules = part("receipt rule", f"the receipt rule set {names.rule_set}",
                         ("rule_set_exists", "inactive_receipt"), None,
                         lambda: _own_rules(clients, names, reads))
    return AccountState(
        region=clients.region,
        account_id=account_id,
        identity=identity,
        mail_from=part("SES MAIL FROM", "the MAIL FROM domain", ("mail_from",), None,
                       lambda: _mail_from(clients, names, reads)) if identity else None,
        configuration_set=configuration_set,
        destination=part("event destination", "the event destination", ("destination",), None,
                         lambda: _destination(clients, names.configuration_set,
                                              names.event_destination, topic_arn, reads))
        if configuration_set else None,
        service_configuration_set=service_exists,
        service_destination=part(
            "service event destination", "the service set's event destination",
            ("service_destination",), None,
            lambda: _destination(clients, service, names.service_event_destination, topic_arn,
                                 reads)) if service_exists else None,
        topic_arn=topic_arn if exists else "",
        topic_allows_ses=exists and topic_allows_ses(topic_policy, account_id),
        subscriptions=part("subscription", "the topic's subscriptions", ("subscriptions",), (),
                           lambda: _subscriptions(clients, topic_arn, reads)) if exists else (),
        queue=part("SQS queue", "the queue, its policy and its dead-letter queue", ("queue",),
                   None, lambda: _queue(clients, names.queue, policy_topic, reads)),
        dead_letter_queue_arn=part(
            "SQS dead-letter queue", "the dead-letter queue", ("dead_letter_queue_arn",), "",
            lambda: _queue_arn(clients, names.dead_letter_queue, reads)),
        receipt=_receipt(active, rules, names, topic_arn) if active else None,
        active_rule_set=active,
        quota=part("SES sending", "the sandbox, the sending status and the quota", ("quota",),
                   None, lambda: _quota(clients, reads)),
        rule_set_exists=own_rules is not None,
        inactive_receipt=_receipt(names.rule_set, own_rules, names, topic_arn)
        if own_rules is not None else None,
        topic_policy=topic_policy,
        unread=tuple(reads.unread),
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


def _identity(clients: Clients, names: Names, reads: Reads) -> IdentityState | None:
    found = reads.call(f"reading the SES identity {names.domain}",
                       clients.sesv2.get_email_identity, missing=NOT_FOUND,
                       EmailIdentity=names.domain)
    if found is None:
        return None
    dkim = found.get("DkimAttributes") or {}
    return IdentityState(
        verified=bool(found.get("VerifiedForSendingStatus")),
        dkim_status=str(dkim.get("Status") or "NOT_STARTED"),
        dkim_tokens=tuple(dkim.get("Tokens") or ()),
    )


def _dkim_tokens(clients: Clients, names: Names, reads: Reads) -> tuple[str, ...]:
    """The tokens from SES v1, when SESv2 leaves them out."""
    legacy = reads.call(f"reading the DKIM tokens of {names.domain}",
                        clients.ses.get_identity_dkim_attributes, Identities=[names.domain])
    return tuple(legacy.get("DkimAttributes", {}).get(names.domain, {}).get("DkimTokens", ()))


def _mail_from(clients: Clients, names: Names, reads: Reads) -> MailFromState | None:
    answer = reads.call(f"reading the MAIL FROM domain of {names.domain}",
                        clients.ses.get_identity_mail_from_domain_attributes,
                        Identities=[names.domain])
    found = answer.get("MailFromDomainAttributes", {}).get(names.domain, {})
    if not found.get("MailFromDomain"):
        return None
    return MailFromState(str(found["MailFromDomain"]), str(found.get("MailFromDomainStatus") or ""))


def _set_exists(clients: Clients, configuration_set: str, reads: Reads) -> bool:
    return reads.call(f"reading the configuration set {configuration_set}",
                      clients.sesv2.get_configuration_set, missing=NOT_FOUND,
                      ConfigurationSetName=configuration_set) is not None


def _destination(
    clients: Clients, configuration_set: str, ours: str, topic_arn: str, reads: Reads
) -> DestinationState | None:
    """The set's SNS destination publishing to our topic, else the one named
    ``ours``, else the first SNS one."""
    answer = reads.call(f"reading the event destinations of {configuration_set}",
                        clients.ses.describe_configuration_set,
                        ConfigurationSetName=configuration_set,
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
    ranked = sorted(found, key=lambda d: (d.topic_arn != topic_arn, d.name != ours))
    return ranked[0] if ranked else None


def _subscriptions(
    clients: Clients, topic_arn: str, reads: Reads
) -> tuple[SubscriptionState, ...]:
    pages = reads.pages(f"reading the subscriptions of {topic_arn}", clients.sns,
                        "list_subscriptions_by_topic", TopicArn=topic_arn)
    return tuple(
        SubscriptionState(str(item.get("Protocol", "")), str(item.get("Endpoint", "")),
                          str(item.get("SubscriptionArn", "")))
        for page in pages
        for item in page.get("Subscriptions", ())
    )


def _queue_attributes(
    clients: Clients, name: str, reads: Reads
) -> tuple[str, dict[str, str]] | None:
    found = reads.call(f"reading the SQS queue {name}", clients.sqs.get_queue_url,
                       missing=NOT_FOUND, QueueName=name)
    if found is None:
        return None
    url = str(found["QueueUrl"])
    answer = reads.call(f"reading the SQS queue {url}", clients.sqs.get_queue_attributes,
                        QueueUrl=url, AttributeNames=["QueueArn", "Policy", "RedrivePolicy"])
    return url, dict(answer.get("Attributes", {}))


def _queue(clients: Clients, name: str, topic_arn: str, reads: Reads) -> QueueState | None:
    found = _queue_attributes(clients, name, reads)
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


def _queue_arn(clients: Clients, name: str, reads: Reads) -> str:
    found = _queue_attributes(clients, name, reads)
    return found[1].get("QueueArn", "") if found else ""


def _active_rule_set(clients: Clients, reads: Reads) -> tuple[str, list[dict[str, Any]]]:
    answer = reads.call("reading the active receipt rule set",
                        clients.ses.describe_active_receipt_rule_set)
    name = str((answer.get("Metadata") or {}).get("Name") or "")
    return name, list(answer.get("Rules") or ()) if name else []


def _own_rules(clients: Clients, names: Names, reads: Reads) -> list[dict[str, Any]] | None:
    found = reads.call(f"reading the receipt rule set {names.rule_set}",
                       clients.ses.describe_receipt_rule_set, missing=NOT_FOUND,
                       RuleSetName=names.rule_set)
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


def _quota(clients: Clients, reads: Reads) -> QuotaState | None:
    """None when AWS answers GetAccount with any error: the doctor warns, setup goes on."""
    try:
        account = clients.sesv2.get_account()
    except Exception as exc:
        if code_of(exc):  # AWS answered, but not with the quota
            return None
        reads.fail("reading the sending quota", exc, clients.sesv2.get_account)
    quota = account.get("SendQuota") or {}
    return QuotaState(
        sandbox=not account.get("ProductionAccessEnabled", False),
        sending_enabled=bool(account.get("SendingEnabled", False)),
        max_24_hour_send=float(quota.get("Max24HourSend") or 0),
        max_send_rate=float(quota.get("MaxSendRate") or 0),
        sent_last_24_hours=float(quota.get("SentLast24Hours") or 0),
    )


__all__ = [
    "NOT_FOUND",
    "AccountState",
    "DestinationState",
    "IdentityState",
    "MailFromState",
    "QueueState",
    "QuotaState",
    "ReceiptState",
    "SubscriptionState",
    "Unread",
    "arn",
    "observe",
    "v1_event_type",
    "v2_event_type",
]
