"""What a build of the site did: :class:`SiteReport`.

Its own module, outside :mod:`pipeline.site`, so that `publish site` can
report a rebuild that found nothing changed (:mod:`pipeline.rebuild`)
without importing the site's planning and rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SiteReport:
    """What a build published and what it changed on disk."""

    public_dir: Path
    issues: tuple[str, ...]
    drafts: tuple[str, ...]
    written: tuple[str, ...]
    unchanged: int
    removed: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    """Every file of the site as built, by public path (written or not)."""
