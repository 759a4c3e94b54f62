"""Settings: embedded defaults < newsletter.toml < environment < flags.

The newsletter's root is the folder holding ``newsletter.toml``; commands find
it by searching upwards from the working directory, the way git finds its
repository, unless ``--root`` (or ``NEWSLETTER_ROOT``) names it.

Every setting has a dotted key (``delivery.transport``), the table and key it
has in newsletter.toml, and an environment variable (``NEWSLETTER_TRANSPORT``).
A missing or invalid setting raises :class:`ConfigError` naming the key.
Secrets (the token secret, the SMTP password, AWS keys) are never read from
the file: only from the environment or boto3's own credential chain. The
commands take the token secret and the SMTP password from Settings, never
from the environment again, and ``repr(Settings)`` hides them and the
database URL's password.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from subscribers.addresses import ascii_domain
from subscribers.errors import InvalidDomain
from subscribers.models import CONFIRMATIONS_PER_DOMAIN, TRUSTED_PROXIES

CONFIG_FILE = "newsletter.toml"
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


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, built once and passed down."""

    root: Path
    name: str
    site_url: str
    sender: Address
    reply_to: Address
    postal_address: str
    description: str = ""
    language: str = "en"
    author: str = ""
    author_email: str = ""
    forum_url: str = ""
    blog_url: str = ""
    greeting_fallback: str = "friend"
    consent_text: str = ""
    transport: str = "outbox"
    rate: float = 0.0
    workers: int = 4
    ses_configuration_set: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    database_url: str = "sqlite:///subscribers.db"
    database_retry: float = 60.0
    """Seconds a send keeps trying a database that fails in a way that may
    pass (locked, restarting) before it stops, its results kept."""
    send_lease: float = 120.0
    """Seconds a sender's claim on recipients outlives its last heartbeat:
    a sender silent this long is taken for dead and its recipients taken back."""
    token_secret: str = ""
    token_secret_previous: str = ""
    """During a rotation, the secret links were signed with before
    ``token_secret``: still read, never used to sign."""
    issues_dir: Path = Path("issues")
    templates_dir: Path = Path("templates")
    outbox_dir: Path = Path("outbox")
    public_dir: Path = Path("public")
    preview_dir: Path = Path("preview")
    s3_bucket: str = ""
    s3_prefix: str = ""
    events_queue_url: str = ""
    sns_topic_arns: tuple[str, ...] = ()
    transient_bounce_limit: int = 3
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    log_ips: bool = False
    """Whether the web service's access log names client addresses."""
    confirmation_lease: int = 300
    """Seconds a confirmation mailer holds the messages it claimed: those a
    mailer that died left unrecorded are taken up again after this long."""
    trusted_proxies: tuple[str, ...] = TRUSTED_PROXIES
    """Networks whose ``X-Forwarded-For`` `publish serve` believes."""
    confirmations_per_domain: int = CONFIRMATIONS_PER_DOMAIN.count
    """Confirmation messages to one domain a minute; more wait their turn."""

    def __repr__(self) -> str:
        """Every field, but the secrets as ``'***'`` and the database URL
        without its password: a repr ends up in logs and tracebacks."""
        from subscribers.db import redact_url

        shown = {item.name: getattr(self, item.name) for item in fields(self)}
        shown.update({attr: "***" for attr in _SECRET_ATTRS if shown[attr]})
        shown["database_url"] = redact_url(self.database_url)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    @property
    def site_host(self) -> str:
        return urlsplit(self.site_url).hostname or ""

    def url(self, path: str) -> str:
        """An absolute URL on the site for a path such as ``issues/calf/``."""
        return f"{self.site_url}/{path.lstrip('/')}"


# ---------------------------------------------------------------------------
# The settings table: field, toml table.key, environment variable, parser.
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
    """``Name <address>``, its domain written as the subscriber store writes it."""
    from email.utils import parseaddr

    text = _required_text(key, value)
    name, email = parseaddr(text)
    local, _, domain = email.rpartition("@")
    if not local or "." not in domain or " " in email:
        raise ConfigError(f"{key}: {text!r} is not an email address")
    return Address(email=f"{local}@{_domain(key, domain)}", name=name)


def _domain(key: str, domain: str) -> str:
    try:
        return ascii_domain(domain)
    except InvalidDomain as exc:
        raise ConfigError(f"{key}: {exc}") from None


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


@dataclass(frozen=True)
class _Spec:
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


SPECS: tuple[_Spec, ...] = (
    _Spec("name", "newsletter.name", "NEWSLETTER_NAME", _required_text, required=True),
    _Spec("site_url", "newsletter.site_url", "NEWSLETTER_SITE_URL", _site_url, required=True),
    _Spec("description", "newsletter.description", "NEWSLETTER_DESCRIPTION", _text),
    _Spec("language", "newsletter.language", "NEWSLETTER_LANGUAGE", _required_text),
    _Spec("author", "newsletter.author", "NEWSLETTER_AUTHOR", _text),
    _Spec("author_email", "newsletter.author_email", "NEWSLETTER_AUTHOR_EMAIL", _email),
    _Spec(
        "postal_address",
        "newsletter.postal_address",
        "NEWSLETTER_POSTAL_ADDRESS",
        _required_text,
        required=True,
    ),
    _Spec("forum_url", "newsletter.forum_url", "NEWSLETTER_FORUM_URL", _url),
    _Spec("blog_url", "newsletter.blog_url", "NEWSLETTER_BLOG_URL", _url),
    _Spec(
        "greeting_fallback",
        "newsletter.greeting_fallback",
        "NEWSLETTER_GREETING_FALLBACK",
        _required_text,
    ),
    _Spec("consent_text", "newsletter.consent_text", "NEWSLETTER_CONSENT_TEXT", _text),
    _Spec("sender", "sender.from", "NEWSLETTER_FROM", _address, required=True),
    _Spec("reply_to", "sender.reply_to", "NEWSLETTER_REPLY_TO", _address, required=True),
    _Spec("transport", "delivery.transport", "NEWSLETTER_TRANSPORT", _choice(*TRANSPORTS)),
    _Spec("rate", "delivery.rate", "NEWSLETTER_RATE", _number(float, 0)),
    _Spec("workers", "delivery.workers", "NEWSLETTER_WORKERS", _number(int, 1)),
    _Spec(
        "ses_configuration_set",
        "delivery.ses_configuration_set",
        "NEWSLETTER_SES_CONFIGURATION_SET",
        _text,
    ),
    _Spec("smtp_host", "delivery.smtp_host", "NEWSLETTER_SMTP_HOST", _required_text),
    _Spec("smtp_port", "delivery.smtp_port", "NEWSLETTER_SMTP_PORT", _number(int, 1)),
    _Spec("smtp_username", "delivery.smtp_username", "NEWSLETTER_SMTP_USERNAME", _text),
    _Spec("smtp_password", "", "NEWSLETTER_SMTP_PASSWORD", _text, secret=True),
    _Spec("smtp_starttls", "delivery.smtp_starttls", "NEWSLETTER_SMTP_STARTTLS", _bool),
    _Spec("database_url", "database.url", "NEWSLETTER_DATABASE_URL", _required_text),
    _Spec("database_retry", "database.retry", "NEWSLETTER_DATABASE_RETRY", _number(float, 0)),
    _Spec("send_lease", "delivery.lease", "NEWSLETTER_SEND_LEASE", _number(float, 1)),
    _Spec("token_secret", "", "NEWSLETTER_TOKEN_SECRET", _text, secret=True),
    _Spec(
        "token_secret_previous", "", "NEWSLETTER_TOKEN_SECRET_PREVIOUS", _text, secret=True
    ),
    _Spec("issues_dir", "paths.issues", "NEWSLETTER_ISSUES_DIR", _path),
    _Spec("templates_dir", "paths.templates", "NEWSLETTER_TEMPLATES_DIR", _path),
    _Spec("outbox_dir", "paths.outbox", "NEWSLETTER_OUTBOX_DIR", _path),
    _Spec("public_dir", "paths.public", "NEWSLETTER_PUBLIC_DIR", _path),
    _Spec("preview_dir", "paths.preview", "NEWSLETTER_PREVIEW_DIR", _path),
    _Spec("s3_bucket", "deploy.s3_bucket", "NEWSLETTER_S3_BUCKET", _text),
    _Spec("s3_prefix", "deploy.s3_prefix", "NEWSLETTER_S3_PREFIX", _text),
    _Spec("events_queue_url", "events.queue_url", "NEWSLETTER_EVENTS_QUEUE_URL", _text),
    _Spec("sns_topic_arns", "events.sns_topic_arns", "NEWSLETTER_SNS_TOPIC_ARNS", _list),
    _Spec(
        "transient_bounce_limit",
        "events.transient_bounce_limit",
        "NEWSLETTER_TRANSIENT_BOUNCE_LIMIT",
        _number(int, 1),
    ),
    _Spec("web_host", "web.host", "NEWSLETTER_WEB_HOST", _required_text),
    _Spec("web_port", "web.port", "NEWSLETTER_WEB_PORT", _number(int, 1)),
    _Spec("log_ips", "web.log_ips", "NEWSLETTER_LOG_IPS", _bool),
    _Spec(
        "confirmation_lease",
        "web.confirmation_lease",
        "NEWSLETTER_CONFIRMATION_LEASE",
        _number(int, 1),
    ),
    _Spec("trusted_proxies", "web.trusted_proxies", "NEWSLETTER_TRUSTED_PROXIES", _networks),
    _Spec(
        "confirmations_per_domain",
        "web.confirmations_per_domain",
        "NEWSLETTER_CONFIRMATIONS_PER_DOMAIN",
        _number(int, 1),
    ),
)

_BY_ATTR = {spec.attr: spec for spec in SPECS}
_PATH_ATTRS = tuple(spec.attr for spec in SPECS if spec.parse is _path)
_SECRET_ATTRS = tuple(spec.attr for spec in SPECS if spec.secret)
_SECRET_WORDS = ("password", "secret", *_SECRET_ATTRS)


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds newsletter.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_FILE} in {here} or any folder above it (use --root to point at one)"
    )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        # utf-8-sig: an editor that saves a byte-order mark still means UTF-8.
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None


def _from_file(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Pick the known keys out of the parsed TOML; unknown keys are an error."""
    known = {spec.key: spec for spec in SPECS if spec.key}
    tables = {key.split(".")[0] for key in known}
    values: dict[str, Any] = {}
    for table, content in data.items():
        if table not in tables:
            raise ConfigError(f"{path}: unknown table or key {table!r}")
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: {table!r} must be a table ([{table}])")
        for key, value in content.items():
            spec = known.get(f"{table}.{key}")
            if spec is None:
                hint = " (secrets belong in the environment)" if key in _SECRET_WORDS else ""
                raise ConfigError(f"{path}: unknown key {table}.{key}{hint}")
            values[spec.attr] = value
    return values


def load_settings(
    root: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the one Settings object for this run.

    ``overrides`` maps Settings attribute names to values given as flags;
    ``None`` values are ignored so that an unset flag never hides the file.
    """
    env = os.environ if environ is None else environ
    if root is None and env.get("NEWSLETTER_ROOT"):
        root = Path(env["NEWSLETTER_ROOT"])
    root = find_root() if root is None else root.resolve()
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: not found")

    raw = _from_file(_read_file(config_path), config_path)
    for spec in SPECS:
        if spec.env in env:
            raw[spec.attr] = env[spec.env]
    for attr, value in (overrides or {}).items():
        if value is not None:
            raw[attr] = value

    values: dict[str, Any] = {}
    for spec in SPECS:
        if spec.attr in raw:
            values[spec.attr] = spec.read(raw[spec.attr])
        elif spec.required:
            raise ConfigError(
                f"{spec.key}: missing (set it in {CONFIG_FILE} or as {spec.env})"
            )
    for attr in _PATH_ATTRS:
        if attr in values and values[attr].is_absolute():
            continue
        values[attr] = root / values.get(attr, _DEFAULTS[attr])
    return Settings(root=root, **values)


_DEFAULTS = {item.name: item.default for item in fields(Settings)}


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with flag values parsed and validated like the file's."""
    parsed = {
        attr: _BY_ATTR[attr].read(value) for attr, value in changes.items() if value is not None
    }
    return replace(settings, **parsed)
