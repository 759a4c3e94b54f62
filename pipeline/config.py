"""Settings: embedded defaults < newsletter.toml < environment < flags.

The newsletter's root is the folder holding ``newsletter.toml``; commands find
it by searching upwards from the working directory, the way git finds its
repository, unless ``--root`` (or ``NEWSLETTER_ROOT``) names it.

    Settings' defaults < newsletter.toml < NEWSLETTER_* variables < flags
        load_settings(root, overrides) ──> Settings, built once, passed down
        with_overrides(settings, ...)  ──> a copy with a command's flags

Every setting has a dotted key (``delivery.transport``), the table and key it
has in newsletter.toml, and an environment variable (``NEWSLETTER_TRANSPORT``):
the table of them, and the parsers that check every value, are in
:mod:`pipeline.settings_spec`. A missing or invalid setting raises
:class:`ConfigError` naming the key.
Secrets (the token secret, the SMTP password, AWS keys) are never read from
the file: only from the environment or boto3's own credential chain. The
commands take the token secret and the SMTP password from Settings, never
from the environment again, and ``repr(Settings)`` hides them and the
database URL's password.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.greeting import DEFAULT_GREETING
from pipeline.settings_spec import (
    BY_ATTR,
    PATH_ATTRS,
    SECRET_ATTRS,
    SECRET_WORDS,
    SPECS,
    TRANSPORTS,
    Address,
)
from subscribers.service_limits import CONFIRMATIONS_PER_DOMAIN, TRUSTED_PROXIES

CONFIG_FILE = "newsletter.toml"


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
    greeting: str = DEFAULT_GREETING
    """The line above every issue, ``{first_name}`` where the name goes; "": none."""
    greeting_fallback: str = "friend"
    consent_text: str = ""
    unsubscribe_domain: str = ""
    """The domain whose ``unsubscribe+TOKEN@`` addresses List-Unsubscribe
    offers as its mailto, SES receiving their mail; empty: no mailto."""
    test_recipients: tuple[str, ...] = ()
    """Where ``publish issue ISSUE --test`` sends its [PREVIEW] copies."""
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
    tracking: bool = False
    """Count opens and clicks through SES, per issue and never per reader
    (``tracking.enabled``); `publish setup ses` turns SES's tracking on or off."""
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
        shown.update({attr: "***" for attr in SECRET_ATTRS if shown[attr]})
        shown["database_url"] = redact_url(self.database_url)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    @property
    def site_host(self) -> str:
        return urlsplit(self.site_url).hostname or ""

    def url(self, path: str) -> str:
        """An absolute URL on the site for a path such as ``issues/calf/``."""
        return f"{self.site_url}/{path.lstrip('/')}"


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
                hint = " (secrets belong in the environment)" if key in SECRET_WORDS else ""
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
            raise ConfigError(f"{spec.key}: missing (set it in {CONFIG_FILE} or as {spec.env})")
    for attr in PATH_ATTRS:
        if attr in values and values[attr].is_absolute():
            continue
        values[attr] = root / values.get(attr, _DEFAULTS[attr])
    return Settings(root=root, **values)


_DEFAULTS = {item.name: item.default for item in fields(Settings)}


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with flag values parsed and validated like the file's."""
    parsed = {
        attr: BY_ATTR[attr].read(value) for attr, value in changes.items() if value is not None
    }
    return replace(settings, **parsed)


__all__ = [
    "CONFIG_FILE",
    "TRANSPORTS",
    "Address",
    "Settings",
    "find_root",
    "load_settings",
    "with_overrides",
]
