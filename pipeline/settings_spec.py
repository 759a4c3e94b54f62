"""The settings table: each setting's key in newsletter.toml, its environment
variable, and the parser that checks its value.

    Spec("transport", "delivery.transport", "NEWSLETTER_TRANSPORT", _choice(...))
          │            │                     │                      │
          │            │                     │                      └ text (or TOML
          │            │                     │                        value) → value,
          │            │                     │                        or ConfigError
          │            │                     └ the environment variable
          │            └ table.key in newsletter.toml; empty for a secret
          └ the Settings attribute

:func:`pipeline.config.load_settings` reads the file and the environment
through this table; every value, from any source, goes through its parser,
so a flag is checked as strictly as the file. An error names the setting
(``delivery.rate: must be at least 0``). Addresses are parsed into
:class:`Address`, their domains written as the subscriber store writes them
(IDNA 2008).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.greeting import check_greeting
from subscribers.addresses import ascii_domain, normalize_address
from subscribers.errors import InvalidDomain, InvalidEmail
from subscribers.plain_address import split_plain

TRANSPORTS = ("outbox", "ses", "smtp")


@dataclass(frozen=True)
class Address:
    """A mailbox with an optional display name."""

    email: str
    name: str = ""

    def __str__(self) -> str:
        if not self.name:
            return self.email
        from email.headerregistry import Address as _HeaderAddress

        username, _, domain = self.email.rpartition("@")
        return str(_HeaderAddress(display_name=self.name, username=username, domain=domain))

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


# ---------------------------------------------------------------------------
# Parsers: (key, value) -> the value, or ConfigError naming the key
# ---------------------------------------------------------------------------

Parser = Callable[[str, Any], Any]


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected text, got {type(value).__name__}")
    if ("\r" in value or "\n" in value) and key != "newsletter.postal_address":
        raise ConfigError(f"{key}: must be a single line")
    return value.strip()


def _required_text(key: str, value: Any) -> str:
    text = _text(key, value)
    if not text:
        raise ConfigError(f"{key}: must not be empty")
    return text


def _url(key: str, value: Any) -> str:
    text = _text(key, value)
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: {text!r} is not an absolute http(s) URL")
    _domain(key, parts.hostname)  # links in mail carry the host as IDNA 2008 writes it
    return text.rstrip("/")


def _site_url(key: str, value: Any) -> str:
    text = _url(key, value)
    if not text:
        raise ConfigError(f"{key}: must not be empty")
    if urlsplit(text).query or urlsplit(text).fragment:
        raise ConfigError(f"{key}: must not have a query or fragment")
    return text


def _address(key: str, value: Any) -> Address:
    """``Name <address>``, the address as the subscriber store writes it
    (:func:`~subscribers.addresses.normalize_address`)."""
    text = _required_text(key, value)
    split = split_plain(text)
    if split is None:
        from email.utils import parseaddr

        split = parseaddr(text)
    name, email = split
    try:
        return Address(email=normalize_address(email), name=name)
    except InvalidDomain as exc:
        raise ConfigError(f"{key}: {exc}") from None
    except InvalidEmail as exc:
        raise ConfigError(f"{key}: {text!r} is not an email address ({exc})") from None


def _domain(key: str, domain: str) -> str:
    try:
        return ascii_domain(domain)
    except InvalidDomain as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _mail_domain(key: str, value: Any) -> str:
    """A domain that mail can be addressed to, as IDNA 2008 writes it; "" for none."""
    text = _text(key, value).rstrip(".")
    if not text:
        return ""
    domain = _domain(key, text)
    try:
        normalize_address(f"unsubscribe@{domain}")
    except (InvalidDomain, InvalidEmail):
        raise ConfigError(f"{key}: {text!r} is not a domain that can receive mail") from None
    return domain


def _email(key: str, value: Any) -> str:
    text = _text(key, value)
    if text and _address(key, text).name:
        raise ConfigError(f"{key}: give a bare address without a display name")
    return text


def _choice(*choices: str) -> Parser:
    def parse(key: str, value: Any) -> str:
        text = _text(key, value).lower()
        if text not in choices:
            raise ConfigError(f"{key}: {text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _number(kind: type, minimum: float) -> Parser:
    def parse(key: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{key}: must be at least {minimum}")
        return number

    return parse


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _greeting(key: str, value: Any) -> str:
    """A greeting format, ``{first_name}`` its one field (:mod:`pipeline.greeting`); "": none."""
    try:
        return check_greeting(_text(key, value))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _path(key: str, value: Any) -> Path:
    return Path(_required_text(key, value))


def _list(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, list):
        items = [_text(key, item) for item in value]
    else:
        raise ConfigError(f"{key}: expected a list of text")
    return tuple(item for item in items if item)


def _addresses(key: str, value: Any) -> tuple[str, ...]:
    """Bare email addresses, as a list or comma-separated text, each as the
    subscriber store writes it, each once."""
    found: list[str] = []
    for item in _list(key, value):
        try:
            address = normalize_address(item)
        except InvalidDomain as exc:
            raise ConfigError(f"{key}: {exc}") from None
        except InvalidEmail as exc:
            raise ConfigError(f"{key}: {item!r} is not an email address ({exc})") from None
        if address not in found:
            found.append(address)
    return tuple(found)


def _networks(key: str, value: Any) -> tuple[str, ...]:
    """IP addresses and networks (CIDR), as a list or comma-separated text."""
    import ipaddress

    found = []
    for item in _list(key, value):
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"{key}: {item!r} is not an IP address or network") from None
    return tuple(found)


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One setting: where it is read from and how its value is checked."""

    attr: str
    key: str
    """``table.key`` in newsletter.toml; empty for secrets, which it may not hold."""
    env: str
    parse: Parser
    required: bool = False
    secret: bool = False

    @property
    def name(self) -> str:
        """What an error message calls the setting."""
        return self.key or self.env

    def read(self, value: Any) -> Any:
        return self.parse(self.name, value)


SPECS: tuple[Spec, ...] = (
    Spec("name", "newsletter.name", "NEWSLETTER_NAME", _required_text, required=True),
    Spec("site_url", "newsletter.site_url", "NEWSLETTER_SITE_URL", _site_url, required=True),
    Spec("description", "newsletter.description", "NEWSLETTER_DESCRIPTION", _text),
    Spec("language", "newsletter.language", "NEWSLETTER_LANGUAGE", _required_text),
    Spec("author", "newsletter.author", "NEWSLETTER_AUTHOR", _text),
    Spec("author_email", "newsletter.author_email", "NEWSLETTER_AUTHOR_EMAIL", _email),
    Spec(
        "postal_address",
        "newsletter.postal_address",
        "NEWSLETTER_POSTAL_ADDRESS",
        _required_text,
        required=True,
    ),
    Spec("forum_url", "newsletter.forum_url", "NEWSLETTER_FORUM_URL", _url),
    Spec("blog_url", "newsletter.blog_url", "NEWSLETTER_BLOG_URL", _url),
    Spec("greeting", "newsletter.greeting", "NEWSLETTER_GREETING", _greeting),
    Spec(
        "greeting_fallback",
        "newsletter.greeting_fallback",
        "NEWSLETTER_GREETING_FALLBACK",
        _required_text,
    ),
    Spec("consent_text", "newsletter.consent_text", "NEWSLETTER_CONSENT_TEXT", _text),
    Spec("sender", "sender.from", "NEWSLETTER_FROM", _address, required=True),
    Spec("reply_to", "sender.reply_to", "NEWSLETTER_REPLY_TO", _address, required=True),
    Spec(
        "unsubscribe_domain",
        "sender.unsubscribe_domain",
        "NEWSLETTER_UNSUBSCRIBE_DOMAIN",
        _mail_domain,
    ),
    Spec(
        "test_recipients",
        "sender.test_recipients",
        "NEWSLETTER_TEST_RECIPIENTS",
        _addresses,
    ),
    Spec("transport", "delivery.transport", "NEWSLETTER_TRANSPORT", _choice(*TRANSPORTS)),
    Spec("rate", "delivery.rate", "NEWSLETTER_RATE", _number(float, 0)),
    Spec("workers", "delivery.workers", "NEWSLETTER_WORKERS", _number(int, 1)),
    Spec(
        "ses_configuration_set",
        "delivery.ses_configuration_set",
        "NEWSLETTER_SES_CONFIGURATION_SET",
        _text,
    ),
    Spec("smtp_host", "delivery.smtp_host", "NEWSLETTER_SMTP_HOST", _required_text),
    Spec("smtp_port", "delivery.smtp_port", "NEWSLETTER_SMTP_PORT", _number(int, 1)),
    Spec("smtp_username", "delivery.smtp_username", "NEWSLETTER_SMTP_USERNAME", _text),
    Spec("smtp_password", "", "NEWSLETTER_SMTP_PASSWORD", _text, secret=True),
    Spec("smtp_starttls", "delivery.smtp_starttls", "NEWSLETTER_SMTP_STARTTLS", _bool),
    Spec("database_url", "database.url", "NEWSLETTER_DATABASE_URL", _required_text),
    Spec("database_retry", "database.retry", "NEWSLETTER_DATABASE_RETRY", _number(float, 0)),
    Spec("send_lease", "delivery.lease", "NEWSLETTER_SEND_LEASE", _number(float, 1)),
    Spec("token_secret", "", "NEWSLETTER_TOKEN_SECRET", _text, secret=True),
    Spec("token_secret_previous", "", "NEWSLETTER_TOKEN_SECRET_PREVIOUS", _text, secret=True),
    Spec("issues_dir", "paths.issues", "NEWSLETTER_ISSUES_DIR", _path),
    Spec("templates_dir", "paths.templates", "NEWSLETTER_TEMPLATES_DIR", _path),
    Spec("outbox_dir", "paths.outbox", "NEWSLETTER_OUTBOX_DIR", _path),
    Spec("public_dir", "paths.public", "NEWSLETTER_PUBLIC_DIR", _path),
    Spec("preview_dir", "paths.preview", "NEWSLETTER_PREVIEW_DIR", _path),
    Spec("s3_bucket", "deploy.s3_bucket", "NEWSLETTER_S3_BUCKET", _text),
    Spec("s3_prefix", "deploy.s3_prefix", "NEWSLETTER_S3_PREFIX", _text),
    Spec("events_queue_url", "events.queue_url", "NEWSLETTER_EVENTS_QUEUE_URL", _text),
    Spec("sns_topic_arns", "events.sns_topic_arns", "NEWSLETTER_SNS_TOPIC_ARNS", _list),
    Spec(
        "transient_bounce_limit",
        "events.transient_bounce_limit",
        "NEWSLETTER_TRANSIENT_BOUNCE_LIMIT",
        _number(int, 1),
    ),
    Spec("tracking", "tracking.enabled", "NEWSLETTER_TRACKING", _bool),
    Spec("web_host", "web.host", "NEWSLETTER_WEB_HOST", _required_text),
    Spec("web_port", "web.port", "NEWSLETTER_WEB_PORT", _number(int, 1)),
    Spec("log_ips", "web.log_ips", "NEWSLETTER_LOG_IPS", _bool),
    Spec(
        "confirmation_lease",
        "web.confirmation_lease",
        "NEWSLETTER_CONFIRMATION_LEASE",
        _number(int, 1),
    ),
    Spec("trusted_proxies", "web.trusted_proxies", "NEWSLETTER_TRUSTED_PROXIES", _networks),
    Spec(
        "confirmations_per_domain",
        "web.confirmations_per_domain",
        "NEWSLETTER_CONFIRMATIONS_PER_DOMAIN",
        _number(int, 1),
    ),
)

BY_ATTR = {spec.attr: spec for spec in SPECS}
PATH_ATTRS = tuple(spec.attr for spec in SPECS if spec.parse is _path)
"""Settings that are folders: relative ones are taken from the newsletter's root."""
SECRET_ATTRS = tuple(spec.attr for spec in SPECS if spec.secret)
"""Settings read only from the environment, and hidden in ``repr(Settings)``."""
SECRET_WORDS = ("password", "secret", *SECRET_ATTRS)
"""Keys that, found in newsletter.toml, earn the hint that secrets belong in
the environment."""

__all__ = [
    "BY_ATTR",
    "PATH_ATTRS",
    "SECRET_ATTRS",
    "SECRET_WORDS",
    "SPECS",
    "TRANSPORTS",
    "Address",
    "Parser",
    "Spec",
]
