"""The web service's settings, as one frozen :class:`WebConfig`.

Whoever serves the app builds one (`publish serve` from its Settings, the
tests by hand) and hands it to :func:`subscribers.web.create_app`; the
confirmation mailer's process builds its :class:`Subscriptions` from the same
one, so that both sign and read links with the same secret and count the
same limits::

    WebConfig ──> create_app(engine, config, send_mail)   the pages
              └─> config.subscriptions(engine, send_mail)  the rules, anywhere

Nothing here imports FastAPI or SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from subscribers.consent import consent_wording
from subscribers.mail_template import OutgoingMessage
from subscribers.models import (
    CONFIRMATIONS_PER_ADDRESS,
    CONFIRMATIONS_PER_DOMAIN,
    SIGNUPS_PER_IP,
    TRUSTED_PROXIES,
    Limit,
    Newsletter,
)
from subscribers.provenance import origin_of
from subscribers.tokens import Signer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from subscribers.mail import ServiceMail
    from subscribers.service import Subscriptions


@dataclass(frozen=True)
class WebConfig:
    """What the web service is for: the newsletter it signs readers up to,
    the secret its links are signed with, its limits and body sizes."""

    name: str
    site_url: str
    sender: str
    """``Pain Free Living <newsletter@example.com>``"""
    reply_to: str
    postal_address: str
    secret: str = field(repr=False)
    previous_secret: str = field(default="", repr=False)
    """The secret of a rotation that links are still read with (see tokens.py)."""
    unsubscribe_domain: str = ""
    """Where List-Unsubscribe's mailto goes, and whose ``unsubscribe+TOKEN@``
    mail ``POST /ses/events`` acts on; "": neither."""
    consent_text: str = ""
    """The wording next to the button, kept with each signup (empty: the default)."""
    blog_url: str = ""
    """The blog, whose pages may post `publish embed`'s form to ``/subscribe``
    (the one other origin it accepts); "": none."""
    per_ip: Limit = SIGNUPS_PER_IP
    """Signup requests from one client network (an IPv4 address, an IPv6 /64)."""
    per_address: Limit = CONFIRMATIONS_PER_ADDRESS
    """Confirmation messages to one mailbox, however its address is spelled."""
    per_domain: Limit = CONFIRMATIONS_PER_DOMAIN
    """Confirmation messages to one domain; more wait for a later window."""
    trusted_proxies: tuple[str, ...] = TRUSTED_PROXIES
    """Addresses and networks whose ``X-Forwarded-For`` the server believes
    (uvicorn's ``forwarded_allow_ips``; whoever serves the app passes it)."""
    max_body: int = 16 * 1024
    sns_topic_arns: tuple[str, ...] = ()
    """The SNS topics whose notifications ``POST /ses/events`` accepts."""
    transient_bounce_limit: int = 3
    tracking: bool = False
    """Whether ``POST /ses/events`` counts opens and clicks (per issue only)."""
    max_events_body: int = 300 * 1024
    """SNS messages are up to 256 KB, plus the envelope."""
    template_dirs: tuple[Path, ...] = ()
    """Folders searched, in order, for the reader-facing pages
    (``pages/NAME.html.j2``) and their layout (``base.html.j2``) before the
    built-in ones: `publish serve` gives the newsletter's templates/web and
    the site's (:mod:`subscribers.page_loader`)."""
    template_cache: Path | None = None
    """A folder the pages' compiled templates are kept in between processes
    (:mod:`subscribers.template_cache`); None: compiled in memory only."""
    layout: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """What the pages' layout is filled with besides each page's own
    values: ``newsletter`` and ``urls``, as the site's pages get them; empty:
    what the built-in layout needs, from the fields above."""

    @property
    def newsletter(self) -> Newsletter:
        return Newsletter(
            name=self.name,
            site_url=self.site_url,
            sender=self.sender,
            reply_to=self.reply_to,
            postal_address=self.postal_address,
            unsubscribe_domain=self.unsubscribe_domain,
        )

    @property
    def consent(self) -> str:
        return consent_wording(self.name, self.consent_text)

    @property
    def site_origin(self) -> str | None:
        return origin_of(self.site_url)

    @property
    def blog_origin(self) -> str | None:
        return origin_of(self.blog_url)

    def subscriptions(
        self,
        engine: Engine,
        send_mail: Callable[[OutgoingMessage], object],
        mail: ServiceMail | None = None,
    ) -> Subscriptions:
        """The subscription rules over the subscribers in ``engine``, with
        this configuration's secret, newsletter and per-address limit, and
        ``mail``'s messages (see :class:`~subscribers.service.Subscriptions`)."""
        from subscribers.service import Subscriptions
        from subscribers.store import Store

        return Subscriptions(
            Store(engine),
            Signer(self.secret, self.previous_secret),
            self.newsletter,
            send_mail,
            self.per_address,
            per_domain=self.per_domain,
            per_network=self.per_ip,
            mail=mail,
        )
