"""The service's own emails as `publish serve` hands them to the service:
built once, and again only when what they show changes.

    templates (mailtexts.py) + the latest issues (the ledger, issues/)
      ─ render_mail ─ required_parts ─ build_mail_template ─▶ MailTemplate
    ServiceMailSource(settings, engine).service_mail() ─▶ subscribers.mail.ServiceMail
        .confirm()   rebuilt when a template file changes
        .welcome()   also when the ledger has a new send, an issue file
                     changes or a scheduled issue's publish_at passes

:mod:`subscribers.mail` fills the template for each reader (To, Date,
Message-ID, the links, the name): microseconds, where building a message
with the email package takes about a millisecond. A template edited into
error while the service runs is logged and the last good one kept, so no
reader ever gets a message made from a broken template; `publish serve`
does not start on one (:func:`pipeline.mailcheck.require_mail_templates`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Settings, with_overrides
from pipeline.errors import ConfigError, PublishError
from pipeline.issue import Issue, find_issue_files, parse_issue_file, read_issue_text
from pipeline.mailcheck import required_parts
from pipeline.mailtexts import (
    DEFAULT_TEMPLATES,
    LATEST,
    LatestIssue,
    MailTemplates,
    RenderedMail,
    load_mail_templates,
    render_mail,
)
from pipeline.render import issue_path_url
from subscribers.addresses import ascii_address, ascii_domain
from subscribers.errors import NewsletterError, UndeliverableAddress
from subscribers.headers import encode_mailbox, encode_unstructured
from subscribers.mail import ServiceMail
from subscribers.mail_template import MailTemplate, build

log = logging.getLogger(__name__)


def build_mail_template(rendered: RenderedMail, settings: Settings) -> MailTemplate:
    """The MIME message of ``rendered``, built once, with slots for To, Date,
    Message-ID, List-Unsubscribe (the welcome's) and the body's values."""
    sender = _address("sender.from", settings.sender.email)
    reply_to = _address("sender.reply_to", settings.reply_to.email)
    head: list[bytes | str] = [
        encode_mailbox("From", settings.sender.name or settings.name, sender),
        encode_mailbox("Reply-To", settings.reply_to.name, reply_to),
        "to",
        encode_unstructured("Subject", rendered.subject),
        b"Date: ",
        "date",
        b"\r\nMessage-ID: ",
        "message_id",
        b"\r\n",
    ]
    if rendered.kind == "welcome":
        head += [
            b"List-Unsubscribe: ",
            "list_unsubscribe",
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ]
    segments, slots = build(head, rendered.text, rendered.html, rendered.markers)
    return MailTemplate(
        segments=segments,
        slots=slots,
        sender=sender,
        unsubscribe_domain=ascii_domain(settings.unsubscribe_domain),
        greeting_fallback=settings.greeting_fallback,
    )


def _address(key: str, address: str) -> str:
    try:
        return ascii_address(address)
    except UndeliverableAddress as exc:
        raise ConfigError(f"{key}: {exc}") from None


@dataclass(frozen=True)
class Latest:
    """The latest issues, and until when that holds without a new send."""

    issues: tuple[LatestIssue, ...]
    until: dt.datetime | None
    """The next publish_at to pass, which publishes one more; None: none is due."""


def latest_issues(
    settings: Settings, sent: Mapping[str, dt.datetime], now: dt.datetime
) -> Latest:
    """The latest published issues, newest first, as the site lists them: the
    sent ones (``sent``: slug to when) and those whose publish_at has passed.
    An issue file that does not parse is left out."""
    from pipeline.site.selection import aware, published_at

    published: list[tuple[Issue, dt.datetime]] = []
    upcoming: list[dt.datetime] = []
    for path in find_issue_files(settings.issues_dir):
        try:
            issue = parse_issue_file(path, read_issue_text(path)).issue
        except PublishError:
            continue
        if issue is None:
            continue
        moment = published_at(issue, sent, now)
        if moment is not None:
            published.append((issue, moment))
        elif issue.publish_at is not None:
            upcoming.append(aware(issue.publish_at))
    published.sort(key=lambda pair: (pair[0].date, pair[1], pair[0].slug), reverse=True)
    issues = tuple(
        LatestIssue(issue.title, issue.preheader, issue_path_url(settings, issue.slug), issue.date)
        for issue, _ in published[:LATEST]
    )
    return Latest(issues, min(upcoming, default=None))


def build_service_mail(
    kind: str, templates: MailTemplates, settings: Settings, latest: Sequence[LatestIssue] = ()
) -> MailTemplate:
    """The ``kind`` email rendered, checked and built; :class:`TemplateError`
    (from rendering) or :class:`PublishError` (a required part missing)."""
    rendered = render_mail(kind, templates, settings, latest)
    missing = required_parts(rendered, settings)
    if missing:
        raise PublishError(str(missing[0]))
    return build_mail_template(rendered, settings)


@dataclass(frozen=True)
class _Built:
    key: Hashable
    until: dt.datetime | None
    template: MailTemplate


class ServiceMailSource:
    """The confirm and welcome templates of a running service, each rebuilt
    only when its key changes (see the module's docstring). Both are built
    when it is made, so that a template in error stops the service before it
    starts. Safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        sent: Callable[[], Mapping[str, dt.datetime]] = dict,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self._sent = sent
        self._now = now
        self._lock = threading.Lock()
        self._built: dict[str, _Built] = {}
        self.confirm()
        self.welcome()

    @classmethod
    def over(cls, settings: Settings, engine: Any) -> ServiceMailSource:
        """The source for a service whose ledger is in ``engine``."""
        from subscribers.ledger import sent_issue_times

        return cls(settings, lambda: sent_issue_times(engine))

    def service_mail(self) -> ServiceMail:
        return ServiceMail(confirm=self.confirm, welcome=self.welcome)

    def confirm(self) -> MailTemplate:
        return self._current("confirm")

    def welcome(self) -> MailTemplate:
        return self._current("welcome")

    def _current(self, kind: str) -> MailTemplate:
        """The template of ``kind``: the one built while its key holds, else
        built now; should that fail, the last one (logged once per change)."""
        with self._lock:
            built = self._built.get(kind)
            now = self._now()
            sent: Mapping[str, dt.datetime] = {}
            key: tuple[Hashable, ...] = (_stamps(self.settings),)
            if kind == "welcome":
                try:
                    sent = self._sent()
                except Exception:  # the database, for a moment: nothing to go on
                    if built is None:
                        raise
                    log.exception("the welcome email was not rebuilt: the ledger cannot be read")
                    return built.template
                key += (tuple(sorted(sent.items())), _issue_stamps(self.settings))
            fresh = built is not None and (built.until is None or now < built.until)
            if built is not None and fresh and built.key == key:
                return built.template
            try:
                templates = load_mail_templates(self.settings)
                latest = latest_issues(self.settings, sent, now) if kind == "welcome" else None
                template = build_service_mail(
                    kind, templates, self.settings, latest.issues if latest else ()
                )
            except (NewsletterError, OSError) as exc:
                if built is None:
                    raise
                log.error("the %s email was not rebuilt; the last one is kept: %s", kind, exc)
                self._built[kind] = _Built(key, None, built.template)
                return built.template
            self._built[kind] = _Built(key, latest.until if latest else None, template)
            return template


def _stamps(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    """Each template file the emails may be built from (those directly in
    templates/, and the built-in ones): name, mtime and size. A template
    they include from a folder inside templates/ is not watched."""
    return _folder_stamps(settings.templates_dir) + _folder_stamps(DEFAULT_TEMPLATES)


def _issue_stamps(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    return _folder_stamps(settings.issues_dir, ".md")


def _folder_stamps(folder: Path, suffix: str = ".j2") -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of each ``suffix`` file directly in ``folder``."""
    try:
        with os.scandir(folder) as entries:
            found = [entry for entry in entries if entry.name.endswith(suffix)]
            stats = [(entry.name, entry.stat()) for entry in found]
    except OSError:
        return ()
    return tuple(sorted((name, info.st_mtime_ns, info.st_size) for name, info in stats))


def service_mail(settings: Settings, engine: Any, site_url: str | None = None) -> ServiceMail:
    """What `publish serve` hands the service over ``engine``: the confirm
    and welcome emails, built now (:class:`TemplateError` for a template in
    error) and rebuilt as they change. ``site_url``: the address the
    service signs its links for (the demo's own), when not the settings'."""
    if site_url is not None and site_url != settings.site_url:
        settings = with_overrides(settings, site_url=site_url)
    return ServiceMailSource.over(settings, engine).service_mail()
