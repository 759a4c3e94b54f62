"""The resource policies setup writes, and the checks that read them back.

    topic policy   SES (``ses.amazonaws.com``) may SNS:Publish to the topic,
                   only on behalf of this account (``AWS:SourceAccount``);
                   the topic's other statements are kept
    queue policy   SNS (``sns.amazonaws.com``) may sqs:SendMessage to the
                   queue, only from the topic (``ArnEquals aws:SourceArn``),
                   and nobody else may do anything: the whole policy is ours

Without the conditions any account's SES, or any topic, could write to
them. The checks take the policy text as AWS returns it (JSON; a missing
policy is ``""``) and never raise: unreadable means not allowed.
"""

from __future__ import annotations

import json
from typing import Any

TOPIC_SID = "AllowSESPublishFromThisAccount"
QUEUE_SID = "AllowOnlyTheTopic"


def topic_statement(topic_arn: str, account_id: str) -> dict[str, Any]:
    return {
        "Sid": TOPIC_SID,
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {"StringEquals": {"AWS:SourceAccount": account_id}},
    }


def topic_policy(existing: str, topic_arn: str, account_id: str) -> str:
    """The topic's policy with our statement in it (replacing an older one
    of ours); its other statements as they were."""
    document = _document(existing) or {"Version": "2008-10-17", "Statement": []}
    kept = [s for s in _statements(document) if s.get("Sid") != TOPIC_SID]
    document["Statement"] = [*kept, topic_statement(topic_arn, account_id)]
    return json.dumps(document, separators=(",", ":"))


def topic_allows_ses(policy: str, account_id: str) -> bool:
    """Some statement lets SES publish, on this account's behalf only."""
    for statement in _statements(_document(policy)):
        if (
            statement.get("Effect") == "Allow"
            and "ses.amazonaws.com" in _principals(statement, "Service")
            and _allows(statement, "sns:publish")
            and _condition(statement, "StringEquals", "aws:sourceaccount") == [account_id]
        ):
            return True
    return False


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": QUEUE_SID,
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        },
        separators=(",", ":"),
    )


def queue_allows_only(policy: str, topic_arn: str) -> bool:
    """The topic may send, and every statement that allows anything allows
    only SNS, from that topic."""
    if not topic_arn:
        return False
    allowing = [s for s in _statements(_document(policy)) if s.get("Effect") == "Allow"]
    if not allowing:
        return False
    for statement in allowing:
        if _principals(statement, "Service") != {"sns.amazonaws.com"} or _principals(
            statement, "AWS"
        ):
            return False
        source = _condition(statement, "ArnEquals", "aws:sourcearn") or _condition(
            statement, "ArnLike", "aws:sourcearn"
        )
        if source != [topic_arn]:
            return False
    return any(_allows(statement, "sqs:sendmessage") for statement in allowing)


# -- reading a policy document ------------------------------------------------


def _document(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _statements(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = (document or {}).get("Statement", [])
    found = [found] if isinstance(found, dict) else found
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


def _principals(statement: dict[str, Any], kind: str) -> set[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return {"*"}
    return set(_listed(principal.get(kind))) if isinstance(principal, dict) else set()


def _allows(statement: dict[str, Any], action: str) -> bool:
    """The statement's actions cover ``action`` (lowercase), wildcards included."""
    service = action.split(":", 1)[0]
    wanted = {action, f"{service}:*", "*"}
    return any(item.lower() in wanted for item in _listed(statement.get("Action")))


def _condition(statement: dict[str, Any], operator: str, key: str) -> list[str]:
    """The values of one condition key (``key`` lowercase; IAM keys are not
    case-sensitive); ``[]`` without it."""
    block = statement.get("Condition")
    entries = block.get(operator) if isinstance(block, dict) else None
    if not isinstance(entries, dict):
        return []
    for name, value in entries.items():
        if str(name).lower() == key:
            return _listed(value)
    return []


__all__ = [
    "QUEUE_SID",
    "TOPIC_SID",
    "queue_allows_only",
    "queue_policy",
    "topic_allows_ses",
    "topic_policy",
    "topic_statement",
]
