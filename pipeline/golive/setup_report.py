"""What ``publish setup ses`` says when it is done: plain lines from an
:class:`~pipeline.golive.setup.Outcome`, for the CLI to print.

    would create ...                        (--dry-run: the plan)
    nothing to change: SES is set up for DOMAIN in REGION
    updated newsletter.toml: events.queue_url, ...
    warning: NEWSLETTER_EVENTS_QUEUE_URL is set and overrides ...

    DNS records to add for DOMAIN:          the zone-file snippet
    DMARC: _dmarc.DOMAIN already ... (kept) the policy DNS has, when that is why no
                                            DMARC record is to add (setup_dmarc.py)
    sending: the SES sandbox in us-east-1: 200 messages a day, 1 a second
    next:                                   numbered, only what is left to do

The ``created ...`` lines of the steps are printed while they happen (the
setup's ``on_step``), so that a run cut short shows what it did.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.golive.account import AccountState, QuotaState
from pipeline.golive.records import dns_records, zone_snippet
from pipeline.golive.setup import Outcome
from pipeline.golive.setup_dmarc import adds_record, dmarc_lines, dmarc_todo
from pipeline.golive.setup_steps import EVENTS_PATH


def report_lines(outcome: Outcome, settings: Settings) -> list[str]:
    lines = _changes(outcome)
    lines += ["", *_records(outcome)]
    lines += ["", _sending(outcome.state)]
    todo = next_steps(outcome, settings)
    if todo:
        lines += ["next:", *(f"  {n}. {item}" for n, item in enumerate(todo, 1))]
    return lines


def _changes(outcome: Outcome) -> list[str]:
    names, state, dry = outcome.names, outcome.state, outcome.options.dry_run
    lines = [step.planned for step in outcome.steps] if dry else []
    if outcome.written:
        verb = "would write" if dry else "updated"
        lines.append(f"{verb} newsletter.toml: {', '.join(outcome.written)}")
    if not outcome.steps and not outcome.written:
        lines.append(f"nothing to change: SES is set up for {names.domain} in {state.region}")
    lines += list(outcome.warnings)
    if outcome.left:
        lines.append(
            "warning: AWS does not show these yet: "
            + "; ".join(step.what for step in outcome.left)
            + " (run publish setup ses again in a minute)"
        )
    return lines


def _records(outcome: Outcome) -> list[str]:
    state, domain = outcome.state, outcome.names.domain
    tokens = state.identity.dkim_tokens if state.identity else ()
    records = dns_records(
        outcome.names,
        state.region,
        tokens,
        outcome.dmarc_report,
        receive=outcome.options.receive,
        dmarc=adds_record(outcome.dmarc),
    )
    known = " known so far" if outcome.options.dry_run else ""
    lines = [
        f"DNS records{known} to add for {domain} (at its DNS provider):",
        *zone_snippet(records).rstrip("\n").split("\n"),
    ]
    said = dmarc_lines(domain, outcome.dmarc)
    return [*lines, "", *said] if said else lines


def quota_words(quota: QuotaState) -> str:
    """``200 messages a day, 1 a second``."""
    day = (
        "no daily limit"
        if quota.max_24_hour_send < 0
        else f"{_number(quota.max_24_hour_send)} messages a day"
    )
    return f"{day}, {_number(quota.max_send_rate)} a second"


def _sending(state: AccountState) -> str:
    quota = state.quota
    if quota is None:
        return f"sending: the quota in {state.region} could not be read (ses:GetAccount)"
    where = "the SES sandbox" if quota.sandbox else "production access"
    stopped = "" if quota.sending_enabled else "; sending is paused for the account"
    return f"sending: {where} in {state.region}: {quota_words(quota)}{stopped}"


def next_steps(outcome: Outcome, settings: Settings) -> list[str]:
    state, names = outcome.state, outcome.names
    todo = []
    identity, mail_from = state.identity, state.mail_from
    if not (
        identity
        and identity.verified
        and identity.dkim_status == "SUCCESS"
        and mail_from
        and mail_from.status == "Success"
    ):
        status = f" (DKIM: {identity.dkim_status})" if identity else ""
        todo.append(
            "add the DNS records above; SES checks them by itself and verifies "
            f"{names.domain} when it sees them{status}"
        )
    todo += dmarc_todo(names.domain, outcome.dmarc)
    if state.quota is None or state.quota.sandbox:
        todo.append(
            "request production access in the SES console (Account dashboard → "
            "Request production access): until then SES sends only to verified "
            "addresses"
        )
    if outcome.options.webhook:
        url = settings.url(EVENTS_PATH)
        if any(s.endpoint == url and s.pending for s in state.subscriptions):
            todo.append(f"run publish serve where SNS reaches {url}: it confirms the subscription")
    elif state.queue is not None:
        todo.append("run publish events sync from cron, to apply bounces and complaints")
    if settings.transport != "ses":
        todo.append('set delivery.transport = "ses" in newsletter.toml to send through SES')
    todo.append("run publish doctor to check DNS, the account and the settings")
    return todo


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


__all__ = ["next_steps", "quota_words", "report_lines"]
