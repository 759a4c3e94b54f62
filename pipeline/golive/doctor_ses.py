"""What the SES account has, checked against what this newsletter needs: the
second part of ``publish doctor``, a pure function of what was read.

    check_account(AccountState, Names, Settings) ──> [Finding]
        the identity, DKIM, MAIL FROM, sending (sandbox, paused, quota),
        the configuration sets and their event destinations
        (pipeline/golive/doctor_sets.py), the topic and its
        policy, the subscription of the configured events path, the queue's
        policy and dead-letter queue, the unsubscribe receipt rule; what
        was not read is not judged, so never called missing

Every problem comes with its fix: the command that mends it (``publish setup
ses`` makes everything it checks) or the console step that does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.config import Settings
from pipeline.golive.account import AccountState, QuotaState
from pipeline.golive.clients import partition
from pipeline.golive.doctor_sets import SETUP, configuration_sets
from pipeline.golive.findings import Finding, error, ok, warning
from pipeline.golive.names import Names

QUOTA_WARNING = 0.8
"""Of the day's quota sent already, above which a send may not fit."""
MIN_RECEIVES = 5
"""The redrive policy's maxReceiveCount `publish events sync` asks for."""


def check_account(state: AccountState, names: Names, settings: Settings) -> list[Finding]:
    """Every finding about the account, in the order mail flows through it;
    a check whose input was not read (``state.unread``) is left out."""
    known = state.known
    return [
        *(_identity(state, names) if known("identity") else ()),
        *(_mail_from(state, names) if known("identity", "mail_from") else ()),
        *(_sending(state.quota) if known("quota") else ()),
        *configuration_sets(state, names, settings),
        *(_topic(state, names, settings) if known("topic_arn") else ()),
        *(_subscriptions(state, settings) if known("topic_arn", "subscriptions") else ()),
        *(_queue(state, names, settings) if known("queue") else ()),
        *(_receipt(state, settings)
          if known("receipt", "active_rule_set", "inactive_receipt") else ()),
    ]


def _setup(flag: str = "") -> str:
    return f"{SETUP} {flag}".strip()


def _identity(state: AccountState, names: Names) -> list[Finding]:
    identity = state.identity
    if identity is None:
        return [error("SES identity", f"no identity for {names.domain} in {state.region}",
                      _setup())]
    found = [
        ok("SES identity", f"{names.domain} is verified for sending in {state.region}")
        if identity.verified
        else error(
            "SES identity",
            f"{names.domain} is not verified for sending yet",
            "add the DKIM records publish setup ses printed; SES verifies the domain "
            "once it sees them",
        )
    ]
    status = identity.dkim_status
    if status == "SUCCESS":
        found.append(ok("SES DKIM", "SES signs mail for the domain (DKIM SUCCESS)"))
    elif status == "PENDING":
        found.append(warning(
            "SES DKIM",
            "PENDING: DNS records not seen yet, can take up to 72 h",
            "add the three DKIM CNAME records publish setup ses printed, then wait",
        ))
    elif status == "TEMPORARY_FAILURE":
        found.append(warning(
            "SES DKIM",
            "TEMPORARY_FAILURE: SES could not read the DKIM records for a while",
            "check the three DKIM CNAME records resolve; SES tries again by itself",
        ))
    else:
        found.append(error(
            "SES DKIM",
            f"{status or 'no status'}: SES does not sign mail for {names.domain}",
            "add the three DKIM CNAME records exactly as publish setup ses printed them; "
            "SES gives up after 72 h without them: then run publish setup ses again",
        ))
    return found


def _mail_from(state: AccountState, names: Names) -> list[Finding]:
    mail_from = state.mail_from
    if state.identity is None:
        return []
    if mail_from is None or not mail_from.domain:
        return [error(
            "SES MAIL FROM",
            f"no custom MAIL FROM domain: bounces come back to amazonses.com, so SPF "
            f"does not align with {names.domain} for DMARC",
            _setup(),
        )]
    domain, status = mail_from.domain, mail_from.status
    if status == "Success":
        return [ok("SES MAIL FROM", f"{domain} is in use")]
    if status in ("Pending", "TemporaryFailure"):
        return [warning(
            "SES MAIL FROM",
            f"{domain} is {status}: SES has not seen its MX and SPF records yet",
            "add the MX and TXT records publish setup ses printed for it",
        )]
    return [error(
        "SES MAIL FROM",
        f"{domain} is {status or 'in no state'}: SES sends with amazonses.com instead",
        f"add the MX and TXT records for {domain} publish setup ses printed, then "
        "run it again",
    )]


def _sending(quota: QuotaState | None) -> list[Finding]:
    if quota is None:
        return [warning(
            "SES sending",
            "SES did not answer GetAccount: the sandbox, sending status and quota are unknown",
            "allow ses:GetAccount in the IAM policy in the README (\"Going live\")",
        )]
    found = []
    if not quota.sending_enabled:
        found.append(error(
            "SES sending",
            "sending is paused for this account: nothing can be sent",
            "SES console → Reputation metrics for why, then Account dashboard → "
            "resume sending",
        ))
    if quota.sandbox:
        found.append(warning(
            "SES sandbox",
            "the account is in the sandbox: only verified addresses receive mail",
            "request production access: SES console → Account dashboard → "
            "Request production access",
        ))
    else:
        found.append(ok("SES sandbox", "the account has production access"))
    found.append(_quota(quota))
    return found


def quota_line(quota: QuotaState) -> str:
    """``200 a day, 1 a second, 12 sent in the last 24 h``."""
    day = "no daily limit" if quota.max_24_hour_send < 0 else (
        f"{_number(quota.max_24_hour_send)} a day")
    return (f"{day}, {_number(quota.max_send_rate)} a second, "
            f"{_number(quota.sent_last_24_hours)} sent in the last 24 h")


def _quota(quota: QuotaState) -> Finding:
    line = quota_line(quota)
    if 0 <= quota.max_24_hour_send * QUOTA_WARNING < quota.sent_last_24_hours:
        return warning(
            "SES quota",
            f"{line}: more than {QUOTA_WARNING:.0%} of the day's quota is used",
            "wait for the 24 h window to move on before a send, or ask for a higher "
            "quota: SES console → Account dashboard → Request a sending quota increase",
        )
    return ok("SES quota", line)


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _topic(state: AccountState, names: Names, settings: Settings) -> list[Finding]:
    if not state.topic_arn:
        return [error("SNS topic", f"{names.topic} does not exist in {state.region}", _setup())]
    found = [
        ok("SNS topic", f"SES may publish to {state.topic_arn}")
        if state.topic_allows_ses
        else error(
            "SNS topic",
            f"the policy of {state.topic_arn} does not let SES publish to it: "
            "every event is dropped",
            f"{_setup()} (it sets the policy)",
        )
    ]
    if settings.sns_topic_arns and state.topic_arn not in settings.sns_topic_arns:
        found.append(error(
            "SNS topic",
            f"events.sns_topic_arns does not list {state.topic_arn}: publish serve "
            "refuses its posts",
            "add it to events.sns_topic_arns (publish setup ses --webhook writes it)",
        ))
    return found


def queue_arn(queue_url: str, region: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` for ``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``
    (the region from the URL when it names one, else ``region``)."""
    parts = urlsplit(queue_url)
    labels = (parts.hostname or "").split(".")
    if len(labels) >= 4 and labels[0] == "sqs":
        region = labels[1]
    elif len(labels) >= 4 and labels[1] == "queue":
        region = labels[0]
    path = [part for part in parts.path.split("/") if part]
    if len(path) != 2:
        return ""
    return f"arn:{partition(region)}:sqs:{region}:{path[0]}:{path[1]}"


def _subscriptions(state: AccountState, settings: Settings) -> list[Finding]:
    if not state.topic_arn:
        return []
    found = []
    if settings.events_queue_url:
        arn = queue_arn(settings.events_queue_url, state.region)
        if any(s.protocol == "sqs" and s.endpoint == arn and not s.pending
               for s in state.subscriptions):
            found.append(ok("subscription", f"the topic delivers to the queue {arn}"))
        else:
            found.append(error(
                "subscription",
                f"the topic has no subscription for the queue of events.queue_url "
                f"({arn or settings.events_queue_url}): no event reaches publish events sync",
                _setup(),
            ))
    if settings.sns_topic_arns:
        url = settings.url("ses/events")
        mine = [s for s in state.subscriptions if s.protocol == "https" and s.endpoint == url]
        if not mine:
            found.append(error(
                "subscription",
                f"the topic has no https subscription for {url}: no event reaches "
                "publish serve",
                _setup("--webhook"),
            ))
        elif all(s.pending for s in mine):
            found.append(error(
                "subscription",
                f"the subscription of {url} is PendingConfirmation",
                "start publish serve so it confirms (SNS retries for a while; "
                f"{_setup('--webhook')} asks again)",
            ))
        else:
            found.append(ok("subscription", f"the topic posts to {url}"))
    return found


def _queue(state: AccountState, names: Names, settings: Settings) -> list[Finding]:
    if not settings.events_queue_url:
        return []
    queue = state.queue
    if queue is None:
        return [error("SQS queue", f"{names.queue} does not exist in {state.region}", _setup())]
    configured = queue_arn(settings.events_queue_url, state.region)
    if queue.arn and configured and configured != queue.arn:
        return [warning(
            "SQS queue",
            f"events.queue_url is not {names.queue}, the queue publish setup ses made: "
            "the configured queue's policy and dead-letter queue are not checked",
            f"set events.queue_url to {queue.url}, or check that queue's policy by hand",
        )]
    found = [
        ok("SQS queue", "only the topic may send to the queue")
        if queue.allows_only_topic
        else error(
            "SQS queue",
            f"the policy of {queue.url} does not restrict SendMessage to the topic: "
            "either SNS cannot deliver, or anyone can post forged bounces",
            f"{_setup()} (it sets the policy)",
        )
    ]
    if not queue.dead_letter_arn:
        found.append(warning(
            "SQS queue",
            f"{queue.url} has no dead-letter queue: an unreadable message comes back "
            "on every sync until it expires",
            f"{_setup()} (it adds {names.dead_letter_queue})",
        ))
    elif 0 < queue.max_receive_count < MIN_RECEIVES:
        found.append(warning(
            "SQS queue",
            f"{queue.url} moves a message to its dead-letter queue after "
            f"{queue.max_receive_count} receives: one interrupted sync may be enough",
            f"set the redrive policy's maxReceiveCount to {MIN_RECEIVES} or more "
            f"({_setup()} does)",
        ))
    return found


def _receipt(state: AccountState, settings: Settings) -> list[Finding]:
    domain = settings.unsubscribe_domain
    if not domain:
        return []
    receipt = state.receipt
    fix = _setup("--receive")
    if receipt is None and state.inactive_receipt is not None:
        return [warning(
            "receipt rule",
            f"{state.inactive_receipt.rule} is in the rule set "
            f"{state.inactive_receipt.rule_set}, which is not active: unsubscribe "
            "requests by mail are lost",
            f"{fix} (it activates the rule set)",
        )]
    if receipt is None:
        where = (f"no rule in the active rule set {state.active_rule_set}"
                 if state.active_rule_set else "no receipt rule set is active, so nothing")
        return [warning(
            "receipt rule",
            f"sender.unsubscribe_domain is {domain}, but {where} receives its "
            "mail: unsubscribe requests by mail are lost",
            fix,
        )]
    problems = []
    if not receipt.enabled:
        problems.append(f"{receipt.rule} is disabled")
    if receipt.recipients and not any(
        r.lower() == domain or r.lower().endswith("@" + domain) for r in receipt.recipients
    ):
        problems.append(f"{receipt.rule} does not receive mail for {domain}")
    if state.topic_arn and receipt.topic_arn != state.topic_arn:
        problems.append(f"{receipt.rule} does not publish to {state.topic_arn}")
    if problems:
        return [warning("receipt rule", "; ".join(problems), fix)]
    return [ok("receipt rule", f"mail to {domain} reaches the events path")]
