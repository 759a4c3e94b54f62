"""Transports deliver finished messages; they never build them.

    outbox   one .eml file per message in the root's outbox/ (the default)
    ses      Amazon SES v2 SendEmail with raw content (boto3)
    smtp     any SMTP relay, SES's SMTP interface included

:func:`open_transport` picks one by name from the settings (and, for SES,
the configuration set: confirm and welcome mail's differs while tracking is
on, see :mod:`pipeline.golive.names`). Tests and
benches build :class:`~pipeline.transports.memory.MemoryTransport` directly
instead: it keeps each message in a list and can be told to be slow or to
fail. It has no name in the settings, because a real send through it would
record every reader as sent while delivering nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.transports.base import OutgoingMessage, Transport, TransportError

if TYPE_CHECKING:
    from pipeline.config import Settings

__all__ = ["OutgoingMessage", "Transport", "TransportError", "open_transport"]


def open_transport(
    settings: Settings, name: str | None = None, *, service: bool = False
) -> Transport:
    """The transport named ``name`` (default: the settings'), ready to send.
    ``service``: for confirm and welcome mail, which SES sends with the
    service configuration set while ``tracking.enabled`` is on, so that it
    is never tracked (:func:`pipeline.transports.ses.configuration_set_for`);
    issues go with ``delivery.ses_configuration_set``."""
    from pipeline.config import TRANSPORTS
    from pipeline.errors import ConfigError

    chosen = name or settings.transport
    if chosen == "outbox":
        from pipeline.transports.outbox import OutboxTransport

        return OutboxTransport(settings.outbox_dir)
    if chosen == "ses":
        from pipeline.transports.ses import SesTransport

        return SesTransport.from_settings(settings, service=service)
    if chosen == "smtp":
        from pipeline.transports.smtp import SmtpTransport

        return SmtpTransport.from_settings(settings)
    raise ConfigError(f"delivery.transport: {chosen!r} is not one of {', '.join(TRANSPORTS)}")
