"""What ``publish setup ses`` would do to an account, as data: the plan.

    plan(state, names, settings, webhook=False, receive=False) ──> [Step]

Pure: from what :func:`pipeline.golive.account.observe` read, each missing
thing becomes a ``create`` step and each thing in a wrong state an
``update`` step, in the order they depend on each other:

    identity (Easy DKIM) → MAIL FROM bounce.DOMAIN → configuration set
    → the service set (confirm and welcome mail's while tracking.enabled)
    → SNS topic (its policy: SES of this account may publish)
    → event destination (the six event types, enabled, to the topic; with
      tracking.enabled OPEN and CLICK too, without it never those two)
    → the service set's event destination (the six, to the same topic,
      never OPEN or CLICK: made whatever tracking.enabled says)
    → dead-letter queue → queue (redrive, policy: only the topic) → SQS
      subscription                                       (without --webhook)
    → https subscription to SITE/ses/events              (with --webhook)
    → receipt rule set, rule for list.DOMAIN → the topic, activation
                                                         (with --receive)

An account set up already gives no step. Names and ARNs are derived (the
topic's and queues' ARNs from the account and region), so the plan is
whole before anything exists, and a run cut short is finished by the next.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.config import Settings
from pipeline.golive.account import AccountState, DestinationState, v1_event_type
from pipeline.golive.clients import partition
from pipeline.golive.names import EVENT_TYPES, TRACKING_EVENT_TYPES, Names, event_types
from pipeline.golive.policies import queue_policy, topic_policy

MAX_RECEIVE_COUNT = 5
"""Receives before SQS moves a message to the dead-letter queue."""
VISIBILITY_TIMEOUT = 60
"""What `publish events sync` asks of the queue (its help says why)."""
DEAD_LETTER_RETENTION = 14 * 24 * 3600
"""SQS's longest: time to look at what could not be read."""
EVENTS_PATH = "ses/events"


@dataclass(frozen=True)
class Step:
    """One change: its one-line description and the call that makes it."""

    verb: Literal["create", "update", "activate"]
    what: str
    """``the SNS topic pain-free-living-ses-events``."""
    service: str
    """The Clients attribute: ``sesv2``, ``ses``, ``sns``, ``sqs``."""
    operation: str
    """The boto3 method: ``create_topic``."""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> str:
        """``created the SNS topic ...``"""
        return f"{self.verb}d {self.what}"

    @property
    def planned(self) -> str:
        return f"would {self.verb} {self.what}"

    @property
    def doing(self) -> str:
        """``creating the SNS topic ...``: what an error message was about."""
        return f"{self.verb[:-1]}ing {self.what}"


def plan(
    state: AccountState, names: Names, settings: Settings, *, webhook: bool, receive: bool
) -> list[Step]:
    """The steps that make the account what the newsletter needs."""
    arns = arns_for(state, names)
    steps = _sending(state, names)
    steps += _events(state, names, arns, settings)
    if webhook:
        steps += _webhook(state, arns, settings.url(EVENTS_PATH))
    else:
        steps += _queue(state, names, arns)
    if receive:
        steps += _receiving(state, names, arns)
    return steps


@dataclass(frozen=True)
class Arns:
    """What the topic and queues are (or will be) called in ARNs."""

    topic: str
    queue: str
    dead_letter_queue: str


def arns_for(state: AccountState, names: Names) -> Arns:
    """The ARNs read, or the ones AWS will give what is still to be made."""

    def derived(service: str, name: str) -> str:
        return f"arn:{partition(state.region)}:{service}:{state.region}:{state.account_id}:{name}"

    return Arns(
        topic=state.topic_arn or derived("sns", names.topic),
        queue=(state.queue.arn if state.queue else "") or derived("sqs", names.queue),
        dead_letter_queue=state.dead_letter_queue_arn
        or derived("sqs", names.dead_letter_queue),
    )


def _sending(state: AccountState, names: Names) -> list[Step]:
    steps = []
    if state.identity is None:
        steps.append(Step(
            "create", f"the SES identity {names.domain} (Easy DKIM, 2048-bit keys)",
            "sesv2", "create_email_identity",
            {"EmailIdentity": names.domain,
             "DkimSigningAttributes": {"NextSigningKeyLength": "RSA_2048_BIT"}},
        ))
    mail_from = state.mail_from.domain if state.mail_from else ""
    if mail_from.lower() != names.mail_from_domain.lower():
        was = f" (it was {mail_from})" if mail_from else ""
        steps.append(Step(
            "update" if mail_from else "create",
            f"the MAIL FROM domain {names.mail_from_domain} of {names.domain}{was}",
            "ses", "set_identity_mail_from_domain",
            {"Identity": names.domain, "MailFromDomain": names.mail_from_domain,
             "BehaviorOnMXFailure": "UseDefaultValue"},
        ))
    for exists, name in ((state.configuration_set, names.configuration_set),
                         (state.service_configuration_set, names.service_configuration_set)):
        if not exists:
            steps.append(Step("create", f"the configuration set {name}", "sesv2",
                              "create_configuration_set", {"ConfigurationSetName": name}))
    return steps


def _events(state: AccountState, names: Names, arns: Arns, settings: Settings) -> list[Step]:
    steps: list[Step] = []
    policy = topic_policy(state.topic_policy, arns.topic, state.account_id)
    if not state.topic_arn:
        steps.append(Step(
            "create", f"the SNS topic {names.topic} (SES of this account may publish to it)",
            "sns", "create_topic", {"Name": names.topic, "Attributes": {"Policy": policy}},
        ))
    elif not state.topic_allows_ses:
        # Our statement is added; the policy's others are kept.
        steps.append(Step(
            "update",
            f"the policy of the SNS topic {names.topic} (SES of this account may publish)",
            "sns", "set_topic_attributes",
            {"TopicArn": arns.topic, "AttributeName": "Policy", "AttributeValue": policy},
        ))
    main = _Wanted(names.configuration_set, names.event_destination, event_types(settings),
                   () if settings.tracking else TRACKING_EVENT_TYPES,
                   "tracking.enabled is false")
    service = _Wanted(names.service_configuration_set, names.service_event_destination,
                      EVENT_TYPES, TRACKING_EVENT_TYPES, "confirm and welcome mail is never "
                      "tracked")
    for wanted, found in ((main, state.destination), (service, state.service_destination)):
        destination = _destination(wanted, found, names.topic, arns)
        if destination is not None:
            steps.append(destination)
    return steps


@dataclass(frozen=True)
class _Wanted:
    """What a configuration set's event destination must be."""

    configuration_set: str
    name: str
    """Its name when it is made."""
    types: tuple[str, ...]
    unwanted: tuple[str, ...]
    """Types taken off it when found."""
    why_not: str
    """Why they are: ``tracking.enabled is false``."""


def _destination(
    wanted: _Wanted, found: DestinationState | None, topic: str, arns: Arns
) -> Step | None:
    """Ours is the destination to the topic, or the one with our name. The
    types it publishes already are kept, but for the unwanted ones (opens and
    clicks, where SES must not track readers)."""
    if found is not None and found.topic_arn != arns.topic and found.name != wanted.name:
        found = None  # another destination, to another topic: left alone
    wanted_types = {v1_event_type(t) for t in wanted.types}
    if found is not None:
        wanted_types |= {v1_event_type(t) for t in found.event_types
                         if t not in wanted.unwanted}
    event_destination = {
        "Name": found.name if found else wanted.name,
        "Enabled": True,
        "MatchingEventTypes": sorted(wanted_types),
        "SNSDestination": {"TopicARN": arns.topic},
    }
    params = {"ConfigurationSetName": wanted.configuration_set,
              "EventDestination": event_destination}
    if found is None:
        return Step(
            "create",
            f"the event destination {wanted.name} of {wanted.configuration_set} "
            f"({_spelled(wanted.types)} → {topic})",
            "ses", "create_configuration_set_event_destination", params,
        )
    missing = [t for t in wanted.types if t not in found.event_types]
    extra = [t for t in wanted.unwanted if t in found.event_types]
    why = ([] if found.enabled else ["enabled"]) + (
        [f"with {_spelled(missing)}"] if missing else []) + (
        [f"without {_spelled(extra)}: {wanted.why_not}"] if extra else []) + (
        [f"to {topic}"] if found.topic_arn != arns.topic else [])
    if not why:
        return None
    return Step(
        "update",
        f"the event destination {found.name} of {wanted.configuration_set} ({', '.join(why)})",
        "ses", "update_configuration_set_event_destination", params,
    )


def _spelled(types: Sequence[str]) -> str:
    """``send, delivery, rendering failure``"""
    return ", ".join(t.lower().replace("_", " ") for t in types)


def _queue(state: AccountState, names: Names, arns: Arns) -> list[Step]:
    steps = []
    if not state.dead_letter_queue_arn:
        steps.append(Step(
            "create", f"the SQS dead-letter queue {names.dead_letter_queue}",
            "sqs", "create_queue",
            {"QueueName": names.dead_letter_queue,
             "Attributes": {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION)}},
        ))
    redrive = json.dumps({"deadLetterTargetArn": arns.dead_letter_queue,
                          "maxReceiveCount": MAX_RECEIVE_COUNT}, separators=(",", ":"))
    policy = queue_policy(arns.queue, arns.topic)
    queue = state.queue
    if queue is None:
        steps.append(Step(
            "create", f"the SQS queue {names.queue} (only {names.topic} may send to it; "
            f"after {MAX_RECEIVE_COUNT} receives a message moves to {names.dead_letter_queue})",
            "sqs", "create_queue",
            {"QueueName": names.queue,
             "Attributes": {"VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                            "RedrivePolicy": redrive, "Policy": policy}},
        ))
    else:
        if not queue.allows_only_topic:
            steps.append(Step(
                "update", f"the policy of the SQS queue {names.queue} (only {names.topic} "
                "may send to it)",
                "sqs", "set_queue_attributes",
                {"QueueUrl": queue.url, "Attributes": {"Policy": policy}},
            ))
        if (queue.dead_letter_arn != arns.dead_letter_queue
                or queue.max_receive_count < MAX_RECEIVE_COUNT):
            steps.append(Step(
                "update", f"the redrive policy of the SQS queue {names.queue} (after "
                f"{MAX_RECEIVE_COUNT} receives a message moves to {names.dead_letter_queue})",
                "sqs", "set_queue_attributes",
                {"QueueUrl": queue.url, "Attributes": {"RedrivePolicy": redrive}},
            ))
    if not any(s.protocol == "sqs" and s.endpoint == arns.queue for s in state.subscriptions):
        steps.append(Step(
            "create", f"the subscription of the SQS queue {names.queue} to the SNS topic "
            f"{names.topic}",
            "sns", "subscribe",
            {"TopicArn": arns.topic, "Protocol": "sqs", "Endpoint": arns.queue,
             "ReturnSubscriptionArn": True},
        ))
    return steps


def _webhook(state: AccountState, arns: Arns, url: str) -> list[Step]:
    if any(s.protocol == "https" and s.endpoint == url for s in state.subscriptions):
        return []
    return [Step(
        "create", f"the subscription of {url} to the SNS topic {arns.topic.rpartition(':')[2]}",
        "sns", "subscribe",
        {"TopicArn": arns.topic, "Protocol": "https", "Endpoint": url,
         "ReturnSubscriptionArn": True},
    )]


def _receiving(state: AccountState, names: Names, arns: Arns) -> list[Step]:
    """A rule in the active rule set (only one may be active in a region:
    someone else's is added to, never replaced); without one, the
    newsletter's own set, activated once its rule is in."""
    rule_set = state.active_rule_set or names.rule_set
    steps = []
    if not state.active_rule_set and not state.rule_set_exists:
        steps.append(Step("create", f"the receipt rule set {names.rule_set}",
                          "ses", "create_receipt_rule_set", {"RuleSetName": names.rule_set}))
    existing = state.receipt if state.active_rule_set else state.inactive_receipt
    rule = {
        "Name": existing.rule if existing else names.rule,
        "Enabled": True,
        "Recipients": [names.receive_domain],
        "ScanEnabled": True,
        "TlsPolicy": "Optional",
        "Actions": [{"SNSAction": {"TopicArn": arns.topic, "Encoding": "UTF-8"}}],
    }
    about = f"for mail to {names.receive_domain} → {names.topic}"
    if existing is None:
        steps.append(Step("create", f"the receipt rule {names.rule} in {rule_set} ({about})",
                          "ses", "create_receipt_rule", {"RuleSetName": rule_set, "Rule": rule}))
    elif (not existing.enabled or existing.topic_arn != arns.topic
          or names.receive_domain not in existing.recipients):
        recipients = sorted({*existing.recipients, names.receive_domain})
        steps.append(Step("update", f"the receipt rule {existing.rule} in {rule_set} ({about})",
                          "ses", "update_receipt_rule",
                          {"RuleSetName": rule_set, "Rule": {**rule, "Recipients": recipients}}))
    if not state.active_rule_set:
        steps.append(Step("activate", f"the receipt rule set {names.rule_set}",
                          "ses", "set_active_receipt_rule_set", {"RuleSetName": names.rule_set}))
    return steps


__all__ = ["EVENTS_PATH", "MAX_RECEIVE_COUNT", "Arns", "Step", "arns_for", "plan"]
