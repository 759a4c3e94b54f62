"""The settings going live depends on, checked without reaching anything:
the first part of ``publish doctor``.

    check_settings(settings) ──> [Finding]
        site URL on https, the token secret, the postal address, the
        transport, the configuration set, the events path, the sender and
        reply-to addresses, the List-Unsubscribe mailto

Never shows a secret: a weak token secret is described, not printed.
"""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.golive.findings import Finding, error, ok, warning
from pipeline.transports.ses import configuration_set_for
from subscribers.errors import TokenError
from subscribers.tokens import MAKE_ONE, SECRET_ENV, check_secret

FREE_MAIL = frozenset(
    {
        "aol.com",
        "gmail.com",
        "gmx.com",
        "gmx.de",
        "googlemail.com",
        "hotmail.com",
        "icloud.com",
        "live.com",
        "mail.com",
        "me.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "yahoo.com",
        "yandex.com",
    }
)
"""Mailbox providers whose domains nobody else can add DNS records to: SES
cannot verify them as a domain identity, and their DMARC policies reject
mail sent as them from anywhere else."""


def check_settings(settings: Settings) -> list[Finding]:
    """Every finding about the settings, in the order the README lists them."""
    return [
        _site_url(settings),
        _token_secret(settings),
        _postal_address(settings),
        _transport(settings),
        _configuration_set(settings),
        _events_path(settings),
        _sender(settings),
        _reply_to(settings),
        _unsubscribe_domain(settings),
    ]


def _site_url(settings: Settings) -> Finding:
    if settings.site_url.startswith("https://"):
        return ok("site", f"links in mail go to {settings.site_url}")
    return error(
        "site",
        f"newsletter.site_url is {settings.site_url}, not https: the unsubscribe and "
        "confirmation links in mail must be https",
        "serve the site over TLS and set newsletter.site_url (NEWSLETTER_SITE_URL) "
        "to its https:// address",
    )


def _token_secret(settings: Settings) -> Finding:
    secret = settings.token_secret.strip()
    if not secret:
        return error(
            "token secret",
            f"{SECRET_ENV} is not set: unsubscribe and confirmation links cannot be signed",
            f"set {SECRET_ENV} in the environment of every publish command; make one with: "
            f"{MAKE_ONE}",
        )
    try:
        check_secret(secret, SECRET_ENV)
    except TokenError as exc:
        # The message names the variable and the weakness, never the value.
        problem = str(exc).split(" (make one with:", 1)[0]
        return error("token secret", problem, f"replace it; make one with: {MAKE_ONE}")
    return ok("token secret", f"{SECRET_ENV} is set and strong")


def _postal_address(settings: Settings) -> Finding:
    if settings.postal_address.strip():
        return ok("postal address", "every issue carries the sender's postal address")
    return error(
        "postal address",
        "newsletter.postal_address is empty: CAN-SPAM requires a physical postal "
        "address in every commercial message",
        "set newsletter.postal_address (NEWSLETTER_POSTAL_ADDRESS)",
    )


def _transport(settings: Settings) -> Finding:
    if settings.transport == "ses":
        return ok("transport", "issues are sent through Amazon SES")
    return warning(
        "transport",
        f"delivery.transport is {settings.transport}, not ses: issues are not sent "
        "through the SES account checked here",
        'set delivery.transport = "ses" (NEWSLETTER_TRANSPORT=ses) to send through it',
    )


def _configuration_set(settings: Settings) -> Finding:
    if settings.ses_configuration_set:
        service = configuration_set_for(settings, service=True)
        also = "" if service == settings.ses_configuration_set else (
            f" (confirm and welcome mail with {service}, never tracked)"
        )
        return ok("configuration set", f"mail is sent with {settings.ses_configuration_set}{also}")
    return error(
        "configuration set",
        "delivery.ses_configuration_set is not set: SES would never publish the "
        "deliveries, bounces and complaints of the mail sent",
        "run publish setup ses, which writes it, or set delivery.ses_configuration_set",
    )


def _events_path(settings: Settings) -> Finding:
    paths = []
    if settings.events_queue_url:
        paths.append(f"the queue {settings.events_queue_url} (publish events sync)")
    if settings.sns_topic_arns:
        paths.append(f"{settings.url('ses/events')} (publish serve)")
    if paths:
        return ok("events path", "bounces and complaints arrive through " + " and ".join(paths))
    return error(
        "events path",
        "neither events.queue_url nor events.sns_topic_arns is set: bounces and "
        "complaints would never reach the list",
        "run publish setup ses (a queue) or publish setup ses --webhook (publish serve)",
    )


def _sender(settings: Settings) -> Finding:
    domain = settings.sender.domain
    if domain in FREE_MAIL:
        return error(
            "sender",
            f"sender.from is at {domain}: SES cannot send as a mailbox provider's "
            "domain, and its DMARC policy rejects mail sent as it from elsewhere",
            "send from an address at a domain you own (sender.from, NEWSLETTER_FROM)",
        )
    return ok("sender", f"mail is from {settings.sender.email}, the SES identity {domain}")


def _reply_to(settings: Settings) -> Finding:
    if settings.reply_to.email:
        return ok("reply-to", f"replies go to {settings.reply_to.email}")
    return error(
        "reply-to",
        "sender.reply_to is not set: replies would go to the sending address",
        "set sender.reply_to (NEWSLETTER_REPLY_TO) to a mailbox someone reads",
    )


def _unsubscribe_domain(settings: Settings) -> Finding:
    domain = settings.unsubscribe_domain
    if domain:
        return ok("unsubscribe mailto", f"List-Unsubscribe offers unsubscribe+TOKEN@{domain}")
    return ok("unsubscribe mailto", "List-Unsubscribe offers the one-click link only")
