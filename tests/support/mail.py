"""The service's confirm and welcome emails for tests that build the
service by hand: built from the templates by the code `publish serve` uses
(:mod:`pipeline.service_mail`), for a :class:`Newsletter` of the test's."""

from __future__ import annotations

import tempfile
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.service_mail import ServiceMailSource
from pipeline.settings_spec import Address
from subscribers.mail import ServiceMail
from subscribers.models import Newsletter


def settings_for(newsletter: Newsletter, root: Path, **changes: Any) -> Settings:
    """Settings for ``newsletter`` rooted at ``root``; with no templates/
    there, the built-in templates are used."""

    def address(text: str) -> Address:
        name, email = getaddresses([text])[0]
        return Address(email, name)

    return Settings(
        root=root,
        name=newsletter.name,
        site_url=newsletter.site_url.rstrip("/"),
        sender=address(newsletter.sender),
        reply_to=address(newsletter.reply_to),
        postal_address=newsletter.postal_address,
        unsubscribe_domain=newsletter.unsubscribe_domain,
        templates_dir=root / "templates",
        issues_dir=root / "issues",
        **changes,
    )


def service_mail(
    newsletter: Newsletter, root: Path | None = None, **changes: Any
) -> ServiceMail:
    """The emails as `publish serve` would hand them to a service for
    ``newsletter``; ``root`` holds the templates/ and issues/ they read, if
    any (by default a new empty folder: the built-in templates, no issues)."""
    root = root or Path(tempfile.mkdtemp(prefix="newsletter-"))
    return ServiceMailSource(settings_for(newsletter, root, **changes)).service_mail()
