"""The one writer: the only code that changes public/.

:func:`write_site` is the second phase of a build. It writes each file of a
planned :class:`~pipeline.site.plan.Site` whose bytes differ from what is on
disk (atomically, through a temporary file), removes the files the last
build wrote that this one no longer has, and saves the manifest. An
unchanged rebuild writes nothing: same bytes, same timestamps.

    Site.files ─ changed? ─▶ public/<path>        (files copied with their mtime;
                                                   pictures as made ready for email)
    Site.previous_files − Site.files ─▶ removed, and their empty folders
    Site.manifest ─▶ public/.publish-site.json
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pipeline.errors import SiteError
from pipeline.site.cache import MANIFEST
from pipeline.site.plan import Site
from pipeline.site_report import SiteReport
from subscribers.files import write_atomic

log = logging.getLogger(__name__)

__all__ = ["SiteReport", "write_site"]


def write_site(public_dir: Path, site: Site) -> SiteReport:
    """Write the files whose bytes differ; remove files the last build wrote
    that this one does not have. Files are replaced atomically."""
    written: list[str] = []
    unchanged = 0
    for public_path in sorted(site.files):
        target = _inside(public_dir, public_path)
        content = site.files[public_path]
        changed = (
            _copy_if_changed(content, target)
            if isinstance(content, Path)
            else _write_if_changed(target, content)
        )
        if changed:
            written.append(public_path)
        else:
            unchanged += 1

    removed: list[str] = []
    for public_path in sorted(set(site.previous_files) - set(site.files)):
        try:
            target = _inside(public_dir, public_path)
        except SiteError:
            continue  # a hand-edited manifest never makes us delete outside public/
        if target.is_file():
            target.unlink()
            removed.append(public_path)
            _prune(target.parent, public_dir)

    manifest = json.dumps(site.manifest, sort_keys=True, ensure_ascii=False).encode()
    _write_if_changed(public_dir / MANIFEST, manifest)
    for message in site.warnings:
        log.warning("%s", message)
    return SiteReport(
        public_dir=public_dir,
        issues=tuple(entry.issue.slug for entry in site.entries),
        drafts=site.drafts,
        written=tuple(written),
        unchanged=unchanged,
        removed=tuple(removed),
        warnings=site.warnings,
        files=tuple(sorted(site.files)),
    )


def _inside(public_dir: Path, public_path: str) -> Path:
    """``public_dir / public_path``, refused unless it stays inside public_dir."""
    root = public_dir.resolve()
    target = (public_dir / public_path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise SiteError(f"{public_path}: not a path inside {public_dir}")
    return public_dir / public_path


def _write_if_changed(target: Path, content: bytes) -> bool:
    try:
        if target.stat().st_size == len(content) and target.read_bytes() == content:
            return False
    except OSError:
        pass
    write_atomic(target, content)
    return True


def _copy_if_changed(source: Path, target: Path) -> bool:
    """Copy a media file, keeping its modification time, so the next build can
    tell it is unchanged from size and time alone."""
    try:
        original = source.stat()
        data: bytes | None = None
        try:
            current = target.stat()
            if current.st_size == original.st_size:
                if current.st_mtime_ns == original.st_mtime_ns:
                    return False
                data = source.read_bytes()
                if target.read_bytes() == data:
                    return False
        except FileNotFoundError:
            pass
        write_atomic(target, data if data is not None else source.read_bytes())
        os.utime(target, ns=(original.st_atime_ns, original.st_mtime_ns))
    except OSError as exc:
        raise SiteError(f"{source}: cannot copy to {target}: {exc.strerror or exc}") from None
    return True


def _prune(folder: Path, public_dir: Path) -> None:
    """Remove ``folder`` and the folders above it that are left empty, up to public_dir."""
    root = public_dir.resolve()
    while folder.resolve() != root and folder.resolve().is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
