"""The local demo: `publish serve` on a loopback address, clickable end to end.

The production site is built for ``newsletter.site_url``: served from
``http://127.0.0.1:8000`` as it is, its archive links, pictures and signup
form would all lead to the public host, and so would the confirm and
unsubscribe links in the mail the service sends. On a loopback address
`publish serve` builds a copy of the site for its own address instead, and
the service signs its links for that address too::

    Settings ─ demo_settings ─▶ Settings'   site_url   = http://HOST:PORT
                                            public_dir = preview/site
    Settings' ─ build_demo_site ─▶ preview/site/   (what `publish site` would
                                                    publish, linked to HOST:PORT)

The copy goes to ``preview/site``, never ``public/``: `publish deploy`
uploads ``public/``, and no page linking to a loopback address may reach the
bucket; and with a folder and page cache of its own, the demo's rebuild and
the production one never take each other's pages or remove each other's
files. On any other address (a server behind a proxy) nothing here applies:
`publish serve` serves ``public/`` with ``newsletter.site_url``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from pipeline.config import Settings, with_overrides
from subscribers.tokens import is_loopback

if TYPE_CHECKING:
    from pipeline.site.writer import SiteReport

log = logging.getLogger(__name__)

DEMO_SITE = "site"
"""The demo site's folder, inside the preview folder (``paths.preview``)."""


def is_demo(settings: Settings) -> bool:
    """Whether `publish serve` runs as the local demo: on a loopback address."""
    return is_loopback(settings.web_host)


def local_site_url(host: str, port: int) -> str:
    """The address a server on ``host`` and ``port`` answers at, as a site
    URL: ``http://127.0.0.1:8000``, ``http://[::1]:8000``."""
    bare = host.strip().strip("[]")
    return f"http://[{bare}]:{port}" if ":" in bare else f"http://{bare}:{port}"


def demo_settings(settings: Settings) -> Settings:
    """``settings`` for the demo: the site URL is the server's own address
    (``web.host`` and ``web.port``) and the site is built into
    ``preview/site``."""
    return with_overrides(
        settings,
        site_url=local_site_url(settings.web_host, settings.web_port),
        public_dir=str(settings.preview_dir / DEMO_SITE),
    )


def build_demo_site(settings: Settings, now: dt.datetime | None = None) -> SiteReport:
    """Build the site into ``settings.public_dir`` as `publish site` does:
    the issues the ledger says were sent, and those whose publish_at has
    passed. ``settings`` are :func:`demo_settings`' (any other folder and
    URL work the same)."""
    from pipeline.context import Context
    from pipeline.site import build_site_from_ledger
    from subscribers.db import connect

    engine = connect(settings.database_url, settings.root)
    try:
        report = build_site_from_ledger(
            Context.load(settings), engine, now or dt.datetime.now(dt.UTC)
        )
    finally:
        engine.dispose()
    log.info("demo site for %s built in %s", settings.site_url, report.public_dir)
    return report
