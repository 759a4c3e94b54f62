"""The AWS clients ``publish setup ses`` and ``publish doctor`` talk through,
and the one wording of what AWS refused.

    clients_for(region) ──> Clients(region, sesv2, ses, sns, sqs, sts)
        boto3's own chain: credentials, profile, AWS_ENDPOINT_URL; the
        region from --region, else AWS_REGION, else boto3's (AWS_DEFAULT_REGION,
        the profile). Throttling
        (Throttling, TooManyRequestsException, 429) is retried with
        backoff, up to :data:`MAX_ATTEMPTS` attempts a call.
    aws_call("creating the topic", clients.sns.create_topic, Name=...)
        the call's answer, or one line as a PublishError:
        AccessDenied   "not allowed to call sns:CreateTopic: add it to the IAM
                        policy in the README ("Going live")"
        anything else  "creating the topic: <aws_problem's words>"

:data:`IAM_ACTIONS` lists every action the two commands call, the policy
the README prints (a test checks that they agree).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from pipeline.errors import ConfigError, PublishError
from subscribers.aws import NO_CREDENTIALS, aws_problem, error_response
from subscribers.errors import first_line

MAX_ATTEMPTS = 8
ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "AuthorizationError")
"""The codes SES, SQS and SNS answer a call IAM does not allow with."""

IAM_ACTIONS = (
    # observe: what the account has (both commands)
    "ses:GetEmailIdentity",
    "ses:GetIdentityDkimAttributes",
    "ses:GetIdentityMailFromDomainAttributes",
    "ses:GetConfigurationSet",
    "ses:DescribeConfigurationSet",
    "ses:DescribeActiveReceiptRuleSet",
    "ses:DescribeReceiptRuleSet",
    "ses:GetAccount",
    "sns:GetTopicAttributes",
    "sns:ListSubscriptionsByTopic",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    # setup: what it makes or fixes
    "ses:CreateEmailIdentity",
    "ses:SetIdentityMailFromDomain",
    "ses:CreateConfigurationSet",
    "ses:CreateConfigurationSetEventDestination",
    "ses:UpdateConfigurationSetEventDestination",
    "ses:CreateReceiptRuleSet",
    "ses:SetActiveReceiptRuleSet",
    "ses:CreateReceiptRule",
    "ses:UpdateReceiptRule",
    "sns:CreateTopic",
    "sns:SetTopicAttributes",
    "sns:Subscribe",
    "sqs:CreateQueue",
    "sqs:SetQueueAttributes",
    # doctor --live: a message to the mailbox simulator, its events off the queue
    "ses:SendEmail",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
)
"""Every IAM action the commands call; sts:GetCallerIdentity needs none."""

T = TypeVar("T")


@dataclass(frozen=True)
class Clients:
    """boto3 clients for one region (typed Any: boto3 has no stubs here)."""

    region: str
    sesv2: Any
    ses: Any
    """SES v1, for what SESv2 has no call for here: the MAIL FROM read-back,
    event destinations and receipt rules (the two share identities and sets)."""
    sns: Any
    sqs: Any
    sts: Any

    @property
    def partition(self) -> str:
        return partition(self.region)


@cache
def partition(region: str) -> str:
    """The ARNs' second field for a region: ``aws``, ``aws-us-gov``, ``aws-eusc``..."""
    import boto3

    return str(boto3.session.Session().get_partition_for_region(region))


def ses_regions() -> tuple[str, ...]:
    """The regions botocore knows SESv2 in, in every partition."""
    import boto3

    session = boto3.session.Session()
    return tuple(
        sorted(
            region
            for name in session.get_available_partitions()
            for region in session.get_available_regions("sesv2", partition_name=name)
        )
    )


def clients_for(region: str | None = None) -> Clients:
    """The clients, by boto3's chain; ``region`` overrides its region.
    ConfigError (one line) without a region, in one without SES, or without
    credentials."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    # AWS_REGION is the SDKs' and the AWS CLI's name; boto3 itself reads
    # AWS_DEFAULT_REGION and the profile's region.
    chosen = region or os.environ.get("AWS_REGION") or session.region_name
    if not chosen:
        raise ConfigError("no AWS region (set AWS_REGION or a profile's region, or give --region)")
    offered = ses_regions()
    if chosen not in offered:
        raise ConfigError(
            f"Amazon SES is not offered in the region {chosen!r}; it is in {', '.join(offered)}"
        )
    try:
        credentials = session.get_credentials()
    except Exception as exc:  # a broken profile or credential process
        raise ConfigError(aws_problem(exc) or first_line(exc)) from None
    if credentials is None:
        raise ConfigError(NO_CREDENTIALS)
    config = Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="painfree-publish-setup",
    )

    def client(service: str) -> Any:
        return session.client(service, region_name=chosen, config=config)

    return Clients(
        region=chosen,
        sesv2=client("sesv2"),
        ses=client("ses"),
        sns=client("sns"),
        sqs=client("sqs"),
        sts=client("sts"),
    )


def aws_call(description: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; any botocore error as one line (the table above).
    ``description`` says what was being done: ``creating the SNS topic x``."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise aws_error(description, exc, fn) from None


def aws_error(description: str, exc: Exception, fn: Callable[..., Any] | None = None) -> Exception:
    """The PublishError for ``exc`` met while ``description``; ``exc`` itself
    when it is not botocore's (a bug should show as one)."""
    answer = error_response(exc)
    if answer is not None and answer.code in ACCESS_DENIED:
        return PublishError(
            f"not allowed to call {iam_action(fn, answer.operation)}: "
            'add it to the IAM policy in the README ("Going live")'
        )
    problem = aws_problem(exc)
    if problem is None:
        return exc
    return PublishError(f"{description}: {problem}")


def iam_action(fn: Callable[..., Any] | None, operation: str) -> str:
    """``ses:CreateConfigurationSet``: the service's IAM prefix (SESv2's is
    ``ses``, its signing name) and the operation."""
    client = getattr(fn, "__self__", None)
    model = getattr(getattr(client, "meta", None), "service_model", None)
    prefix = str(getattr(model, "signing_name", "") or "") or "aws"
    return f"{prefix}:{operation}" if operation else prefix


def code_of(exc: BaseException) -> str:
    """The AWS error code an exception carries (``NotFoundException``), or ``""``."""
    answer = error_response(exc)
    return answer.code if answer else ""


__all__ = [
    "IAM_ACTIONS",
    "MAX_ATTEMPTS",
    "Clients",
    "aws_call",
    "aws_error",
    "clients_for",
    "code_of",
    "iam_action",
    "partition",
    "ses_regions",
]
