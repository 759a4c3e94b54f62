"""The errors an editor can cause and fix: the pipeline's part of the one
exception tree of both packages, which :mod:`subscribers.errors` draws
whole (``PublishError`` under its ``NewsletterError``).

Every exception here carries a one-line message that names the file, line
or setting at fault; the CLI prints it as ``error: <message>`` and exits 1.
Anything else that escapes is a bug. The rest of the pipeline's part stands
beside the code that raises it: ``FetchError`` (fetch.py), ``IssueNotReady``
(sendplan.py) and the ``TransportError`` family (transports/base.py).
"""

from __future__ import annotations

from pathlib import Path

from subscribers.errors import NewsletterError


class PublishError(NewsletterError):
    """A problem with the newsletter's files, settings, site or sends."""


class ConfigError(PublishError):
    """A missing or invalid setting; the message names the key."""


class LocatedError(PublishError):
    """A problem in a file, located as ``path:line`` (or ``path`` alone)."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


class IssueError(LocatedError):
    """A problem in an issue file."""


class ImageError(IssueError):
    """A picture an issue uses that cannot be made ready for email: not a
    picture Pillow can read, cut short, or too many pixels; located at the
    picture's file (:mod:`pipeline.images`)."""


class TemplateError(LocatedError):
    """A template that fails to load, fill or compile."""


class SiteError(PublishError):
    """The static site cannot be built or deployed."""


class FeedError(PublishError):
    """A blog feed that cannot be read for a draft."""


class SendError(PublishError):
    """A send that cannot start, or that had to stop."""
