"""The web service's access log, kept free of what identifies a reader.

A confirm or unsubscribe link's token is as good as the reader's consent or
their way out, and a client address is personal data: uvicorn's access log
would keep both for as long as the log lives. :class:`AccessLogFilter`
rewrites each access record before it is written: the token becomes ``…``
and the client address ``-`` unless the operator asked for addresses
(``web.log_ips``), for example to trace abuse.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"

_TOKEN_PATH = re.compile(r"^(/(?:confirm|unsubscribe)/)[^/?#]+")


def redact_path(path: str) -> str:
    """``/unsubscribe/TOKEN?x`` -> ``/unsubscribe/…?x``; other paths as they are."""
    return _TOKEN_PATH.sub(r"\1…", path)


class AccessLogFilter(logging.Filter):
    """Redacts uvicorn's access records: ``(client, method, path, version, status)``."""

    def __init__(self, *, log_ips: bool) -> None:
        super().__init__()
        self.log_ips = log_ips

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            record.args = (
                client if self.log_ips else "-",
                method,
                redact_path(str(path)),
                version,
                status,
            )
        return True


def install(*, log_ips: bool) -> AccessLogFilter:
    """Put the filter on uvicorn's access logger; returns it (to remove it)."""
    found = AccessLogFilter(log_ips=log_ips)
    logging.getLogger(ACCESS_LOGGER).addFilter(found)
    return found
