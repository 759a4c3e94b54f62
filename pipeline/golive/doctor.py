"""``publish doctor``: every check of going live, in one list of findings.

    run_doctor(settings, region=, nameserver=, live=, timeout=) ──> [Finding]
      1. the settings                 doctor_settings.check_settings
      2. the SES account              account.observe, then doctor_ses.check_account:
                                      every read AWS refuses or fails is an
                                      error finding of its own (the IAM action
                                      to add), and what it left unknown is not
                                      judged; GetCallerIdentity failing is the
                                      one finding of the account
      3. DNS                          dns.check_dns, with the identity's DKIM
                                      tokens (while they are unknown, no DKIM
                                      finding and DMARC not judged by what
                                      aligns); the receiving MX when
                                      sender.unsubscribe_domain is set
      4. with ``live``, the live loop live.run_live: mail to SES's mailbox
                                      simulator, its feedback through the
                                      events path

Only what cannot be checked at all is an exception, a one-line
:class:`~pipeline.errors.ConfigError`: no AWS credentials or region, a
malformed ``--nameserver``.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.golive.account import AccountState, observe
from pipeline.golive.clients import Clients, clients_for
from pipeline.golive.dns import check_dns, make_resolver
from pipeline.golive.doctor_ses import check_account
from pipeline.golive.doctor_settings import check_settings
from pipeline.golive.findings import Finding, error
from pipeline.golive.live import run_live
from pipeline.golive.names import Names, names_for

LIVE_TIMEOUT = 120.0
"""Seconds ``--live`` waits for the notifications, by default."""
AGAIN = "check the credentials and region, then run publish doctor again"


def run_doctor(
    settings: Settings,
    *,
    region: str | None = None,
    nameserver: str = "",
    live: bool = False,
    timeout: float = LIVE_TIMEOUT,
) -> list[Finding]:
    """Every finding, settings first (see the table above)."""
    resolver = make_resolver(nameserver)  # a bad --nameserver before any AWS call
    clients = clients_for(region)
    names = names_for(settings)
    findings = check_settings(settings)
    state: AccountState | None = None
    try:
        # The service set only matters (and is only read) while tracking is on.
        state = observe(clients, names, settings, keep_going=True, service_set=settings.tracking)
    except PublishError as exc:  # the account itself could not be read
        findings.append(error("SES account", str(exc), AGAIN))
    else:
        findings += unread_findings(state)
        findings += check_account(state, names, settings)
    tokens: tuple[str, ...] | None = None  # not known: the identity could not be read
    if state is not None and state.known("identity", "dkim_tokens"):
        tokens = state.identity.dkim_tokens if state.identity else ()
    findings += check_dns(
        resolver, names, clients.region, tokens, receive=bool(settings.unsubscribe_domain),
        dmarc_report=settings.reply_to.email,  # what publish setup ses suggests by default
    )
    if live:
        findings += _live(settings, names, clients, timeout)
    return findings


def unread_findings(state: AccountState) -> list[Finding]:
    """One error a failed read: what was read, AWS's answer, what is unknown
    without it; the fix names the IAM action when IAM refused it."""
    return [
        error(
            item.subject,
            f"{item.description}: {item.problem}; unknown: {item.unknown}",
            item.refusal if item.denied else AGAIN,
        )
        for item in state.unread
    ]


def _live(settings: Settings, names: Names, clients: Clients, timeout: float) -> list[Finding]:
    from subscribers.store import Store

    if not (settings.events_queue_url or settings.sns_topic_arns):
        return [error(
            "live",
            "no events path to watch: the probes' feedback could arrive nowhere",
            "run publish setup ses, then publish doctor --live again",
        )]
    sqs = clients.sqs if settings.events_queue_url else None
    with Store.open(settings.database_url, settings.root) as store:
        return run_live(settings, names, clients.sesv2, sqs, store, timeout=timeout)
