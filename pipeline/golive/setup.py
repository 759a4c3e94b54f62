"""``publish setup ses``: observe the account, plan what is missing, apply
it, read the account again, and write the names into newsletter.toml.

    setup_ses(settings, Options(webhook=..., receive=..., dry_run=...))
      1. the options checked: --webhook needs an https site, --receive a
         region where SES receives mail (:data:`RECEIVING_REGIONS`)
      2. clients_for(region)            (pipeline/golive/clients.py)
      3. observe(...)                   (pipeline/golive/account.py), and DNS's
         DMARC policy for the domain:   read_dmarc, publish doctor's tree walk
         (a policy found: no DMARC record printed to add; DNS not read: a warning)
      4. plan(...)                      (pipeline/golive/setup_steps.py)
         --dry-run stops here: nothing is changed, nothing written
      5. apply(clients, steps)          one call a step, each reported done
      6. observe(...) again             the DKIM tokens, the queue's URL
      7. newsletter.toml                (pipeline/golive/tomlfile.py) the keys
         whose value is not right yet:
           delivery.ses_configuration_set  always
           events.queue_url                without --webhook
           events.sns_topic_arns           with --webhook (others kept)
           sender.unsubscribe_domain       with --receive
         an environment variable that overrides one of them: a warning

Every step is found again by its derived name, so a run cut short (Ctrl-C,
a refused call) loses nothing: the next run does what is left.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dns.resolver

from pipeline.config import CONFIG_FILE, Settings
from pipeline.errors import ConfigError
from pipeline.golive.account import AccountState, observe
from pipeline.golive.clients import Clients, aws_call, clients_for
from pipeline.golive.dns import Lookup, QueryFailed, find_dmarc, make_resolver, server_label
from pipeline.golive.names import Names, names_for
from pipeline.golive.setup_dmarc import DmarcSeen
from pipeline.golive.setup_steps import EVENTS_PATH, Step, plan
from pipeline.golive.tomlfile import Value, set_keys
from pipeline.settings_spec import SPECS
from subscribers.addresses import normalize_address
from subscribers.errors import InvalidDomain, InvalidEmail

RECEIVING_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
)
"""The regions where SES receives mail (AWS's table of email receiving
endpoints, inbound-smtp.REGION.amazonaws.com)."""

QUEUE_URL_KEY = "events.queue_url"
TOPIC_ARNS_KEY = "events.sns_topic_arns"


@dataclass(frozen=True)
class Options:
    region: str | None = None
    """--region; None: boto3's chain decides."""
    webhook: bool = False
    receive: bool = False
    dry_run: bool = False
    dmarc_report: str = ""
    """Where DMARC reports go; empty: the reply-to address."""
    nameserver: str = ""
    """--nameserver, asked for the DMARC policy DNS has; empty: the system's."""


@dataclass(frozen=True)
class Outcome:
    """What a run found and did, for the report."""

    names: Names
    state: AccountState
    """The account after the run (before it, for a dry run)."""
    steps: tuple[Step, ...]
    """Done, or (dry run) planned."""
    written: tuple[str, ...]
    """newsletter.toml keys written (dry run: that would be)."""
    warnings: tuple[str, ...]
    left: tuple[Step, ...]
    """Steps the account still needs after the run (AWS not caught up yet)."""
    options: Options
    dmarc_report: str
    dmarc: DmarcSeen
    """The DMARC policy DNS already has for the domain."""


def setup_ses(
    settings: Settings,
    options: Options,
    *,
    on_step: Callable[[str], None] | None = None,
    clients: Clients | None = None,
) -> Outcome:
    """Set the account up (see the module's table); ``on_step`` hears each
    step's ``created ...`` line as soon as it is done."""
    check_site(settings, options)
    dmarc = dmarc_address(options.dmarc_report) or settings.reply_to.email
    resolver = dns_resolver(options.nameserver)  # a bad --nameserver before any AWS call
    clients = clients or clients_for(options.region)
    check_region(clients.region, options)
    names = names_for(settings)
    state = observe(clients, names, settings)
    seen = read_dmarc(resolver, names.domain)
    steps = plan(state, names, settings, webhook=options.webhook, receive=options.receive)
    path = settings.root / CONFIG_FILE
    outcome = partial(Outcome, names, options=options, dmarc_report=dmarc, dmarc=seen)
    if options.dry_run:
        values = wanted_settings(settings, names, state, options)
        keys = differing(path, values)
        if options.webhook and not state.topic_arn:
            keys.append(TOPIC_ARNS_KEY)  # once the topic exists
        elif not options.webhook and state.queue is None:
            keys.append(QUEUE_URL_KEY)  # once the queue exists
        warnings = tuple(env_warnings(values))
        return outcome(state, tuple(steps), tuple(keys), warnings, left=())
    apply(clients, steps, on_step)
    after = observe(clients, names, settings) if steps else state
    left = plan(after, names, settings, webhook=options.webhook, receive=options.receive)
    values = wanted_settings(settings, names, after, options)
    written = set_keys(path, values)
    warnings = tuple(env_warnings(values))
    return outcome(after, tuple(steps), tuple(written), warnings, left=tuple(left))


def check_site(settings: Settings, options: Options) -> None:
    if options.webhook and not settings.site_url.startswith("https://"):
        raise ConfigError(
            f"newsletter.site_url: --webhook subscribes {settings.url(EVENTS_PATH)}, but SNS "
            "delivers notifications only to https:// (set an https site_url, or leave out "
            "--webhook for the SQS queue)"
        )


def dmarc_address(text: str) -> str:
    """--dmarc-report's address as mail is sent to it; ConfigError if it is none."""
    if not text:
        return ""
    try:
        return normalize_address(text)
    except (InvalidEmail, InvalidDomain) as exc:
        raise ConfigError(f"--dmarc-report: {text!r} is not an email address ({exc})") from None


def check_region(region: str, options: Options) -> None:
    if options.receive and region not in RECEIVING_REGIONS:
        raise ConfigError(
            f"--receive: SES does not receive mail in {region}; it does in "
            f"{', '.join(RECEIVING_REGIONS)} (give --region, or leave out --receive)"
        )


def dns_resolver(nameserver: str) -> dns.resolver.Resolver | str:
    """The resolver DMARC is read through: ``--nameserver``'s (a malformed
    one is a ConfigError), or the system's; when the system has none, why
    not, and setup goes on without reading DNS."""
    if nameserver:
        return make_resolver(nameserver)
    try:
        return make_resolver()
    except ConfigError as exc:
        return str(exc)


def read_dmarc(resolver: dns.resolver.Resolver | str, domain: str) -> DmarcSeen:
    """The DMARC policy DNS has for ``domain``, by ``publish doctor``'s tree
    walk; a query that fails (or no resolver) is the problem, never an error:
    setup then prints the record to add, with a warning."""
    if isinstance(resolver, str):
        return DmarcSeen(problem=resolver)
    try:
        found_at, records = find_dmarc(Lookup(resolver), domain)
    except QueryFailed as failed:
        return DmarcSeen(problem=failed.message)
    except OSError as exc:  # a socket error dnspython let through
        return DmarcSeen(problem=f"cannot ask {server_label(resolver)}: {exc}")
    return DmarcSeen(found_at, tuple(records))


def apply(
    clients: Clients, steps: list[Step], on_step: Callable[[str], None] | None = None
) -> None:
    """Make each step's call, in order; stop at the first AWS refusal (one
    line, :func:`pipeline.golive.clients.aws_call`)."""
    for step in steps:
        call = getattr(getattr(clients, step.service), step.operation)
        aws_call(step.doing, call, **step.params)
        if on_step is not None:
            on_step(step.done)


def wanted_settings(
    settings: Settings, names: Names, state: AccountState, options: Options
) -> dict[str, Value]:
    """The newsletter.toml keys setup owns, and what they should hold
    (the queue's URL only once it exists)."""
    values: dict[str, Value] = {"delivery.ses_configuration_set": names.configuration_set}
    if options.webhook:
        if state.topic_arn:
            topics = _file_topics(settings.root / CONFIG_FILE)
            values[TOPIC_ARNS_KEY] = (
                topics if state.topic_arn in topics else [*topics, state.topic_arn]
            )
    elif state.queue is not None:
        values[QUEUE_URL_KEY] = state.queue.url
    if options.receive:
        values["sender.unsubscribe_domain"] = names.receive_domain
    return values


def differing(path: Path, values: Mapping[str, Value]) -> list[str]:
    """The keys whose value in the file is not ``values``'."""
    current = _read(path)
    return [key for key, value in values.items() if _value(current, key) != _listed(value)]


def env_warnings(
    values: Mapping[str, Value], environ: Mapping[str, str] | None = None
) -> list[str]:
    """One line per environment variable that overrides a key setup wrote."""
    env = os.environ if environ is None else environ
    found = []
    for spec in SPECS:
        if spec.key in values and spec.env in env:
            wanted = _listed(values[spec.key])
            if _listed(spec.read(env[spec.env])) != wanted:
                found.append(
                    f"warning: {spec.env} is set and overrides {spec.key} in {CONFIG_FILE}: "
                    f"unset it, or set it to the value written there"
                )
    return found


def _file_topics(path: Path) -> list[str]:
    """The topic ARNs newsletter.toml has (a list, or comma-separated text)."""
    arns = _value(_read(path), TOPIC_ARNS_KEY)
    return [str(arn) for arn in arns] if isinstance(arns, list) else []


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _value(data: Mapping[str, Any], dotted: str) -> object:
    table, _, key = dotted.partition(".")
    section = data.get(table)
    value = section.get(key) if isinstance(section, dict) else None
    if isinstance(value, str) and dotted == TOPIC_ARNS_KEY:  # comma-separated text
        return [item.strip() for item in value.split(",") if item.strip()]
    return _listed(value)


def _listed(value: object) -> object:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return value


__all__ = [
    "RECEIVING_REGIONS",
    "Options",
    "Outcome",
    "apply",
    "check_region",
    "check_site",
    "dns_resolver",
    "env_warnings",
    "plan",
    "read_dmarc",
    "setup_ses",
    "wanted_settings",
]
