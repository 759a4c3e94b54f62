"""Pictures made ready for email, kept between commands in the newsletter's
own ``.cache/pictures/``: an issue being written is checked again and again
before it is published, and making a phone photo ready takes a tenth of a
second. Each entry is keyed by the digest of the source and of
:data:`~pipeline.picture.RECIPE`, so a changed picture, or a new way of
making pictures, is never served stale; an entry whose bytes do not match
its record is ignored.

    find(folder, source_sha256)   the Picture made before, or None
    keep(folder, picture)         keep it for the next command

Only the context phase (:mod:`pipeline.context`) calls these.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.picture import RECIPE, Picture
from subscribers.files import write_atomic

_RECIPE = hashlib.sha256(RECIPE.encode("utf-8")).hexdigest()[:16]


def _key(source_sha256: str) -> str:
    return f"{source_sha256}-{_RECIPE}"


def find(folder: Path, source_sha256: str) -> Picture | None:
    """The picture made from the source with this digest, if it was kept."""
    key = _key(source_sha256)
    try:
        record = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        data = (folder / f"{key}.bin").read_bytes()
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            return None
        return Picture(
            data=data,
            format=str(record["format"]),
            width=int(record["width"]),
            height=int(record["height"]),
            source_sha256=source_sha256,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep(folder: Path, picture: Picture) -> None:
    """Keep ``picture`` for later commands; a folder that cannot be written
    only means making it again next time."""
    key = _key(picture.source_sha256)
    record = {
        "format": picture.format,
        "width": picture.width,
        "height": picture.height,
        "sha256": hashlib.sha256(picture.data).hexdigest(),
    }
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(folder / f"{key}.bin", picture.data)
        write_atomic(folder / f"{key}.json", json.dumps(record) + "\n")
    except OSError:
        pass
