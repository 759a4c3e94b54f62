"""What a command's result is made from, so that a later run can tell it
would come out the same and say it again instead of doing the work.

    settings_key(settings, *more)   a digest of the settings but the secrets (and
                                    the database URL), the working folder, Python,
                                    the installed packages and ``more``
    input_files(settings, more)     every file under issues/, the templates and the
                                    code (pipeline/ and subscribers/), following
                                    links, and under each of ``more``: stats, as
                                    :mod:`pipeline.filestate` lists them
    read_record(path, version)      a command's record, kept as JSON, if this
    write_record(path, record)      version wrote it; kept atomically, owner-only

`publish site` (:mod:`pipeline.rebuild`) and `publish check`
(:mod:`pipeline.checking`) keep theirs under the newsletter's .cache/.
Nothing here reads a file's bytes but the records.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pipeline
import subscribers
from pipeline.config import Settings
from pipeline.filestate import Entry, is_racy, listing

REPOSITORY_TEMPLATES = Path(pipeline.__file__).resolve().parent.parent / "templates"
"""The repository's templates/, which :mod:`pipeline.templates` falls back on."""
CODE = (Path(pipeline.__file__).resolve().parent, Path(subscribers.__file__).resolve().parent)
"""The packages' folders: their modules, built-in templates and pages."""


def settings_key(settings: Settings, *more: str) -> str:
    """A digest of everything besides files that shapes a command's result:
    the settings but the secrets (and the database URL, which a command
    that reads the database compares itself), the working folder (paths are
    shown relative to it), Python, the installed packages, and ``more``."""
    from pipeline.settings_spec import SECRET_ATTRS

    parts = [
        f"{item.name}={getattr(settings, item.name)!r}"
        for item in fields(settings)
        if item.name not in SECRET_ATTRS and item.name != "database_url"
    ]
    parts += [*more, f"cwd={Path.cwd()}", f"python={sys.version}"]
    parts += sorted(_installed())
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _installed() -> Iterable[str]:
    """Every installed distribution, with its version, as its metadata folder's name."""
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        metadata = (name for name in names if name.endswith((".dist-info", ".egg-info")))
        yield from (f"{folder}:{name}" for name in metadata)


def input_files(settings: Settings, more: Iterable[Path] = ()) -> dict[str, Entry]:
    """Every file a command over the issues may read, by path: issues/, the
    templates, the code, ``more`` (files or folders), and wherever a link
    among them leads."""
    pending = [
        settings.issues_dir,
        settings.issues_dir.resolve(),
        settings.templates_dir,
        REPOSITORY_TEMPLATES,
        *CODE,
        *more,
    ]
    found: dict[str, Entry] = {}
    seen: set[str] = set()
    while pending:
        folder = pending.pop()
        if str(folder) in seen:
            continue
        seen.add(str(folder))
        for path, entry in listing(folder).items():
            if "__pycache__" in Path(path).parts:
                continue
            found[path] = entry
            if "link" in entry:
                pending.append(Path(os.path.realpath(path)))
    return dict(sorted(found.items()))


def any_racy(entries: Mapping[str, Entry], taken_ns: int) -> bool:
    """Whether any file's stat in ``entries`` was too fresh to trust when
    they were listed at ``taken_ns``: taken again, the next run can trust it."""
    return any("stat" in entry and is_racy(entry["stat"], taken_ns) for entry in entries.values())


def read_record(path: Path, version: int) -> dict[str, Any] | None:
    """The record at ``path``, or None if there is none that ``version`` wrote."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("version") != version:
        return None
    return record


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Keep ``record`` at ``path``; a folder that cannot be written only
    means doing the work again next time."""
    from subscribers.files import write_atomic

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record, ensure_ascii=False), mode=0o600)
    except OSError:
        pass
