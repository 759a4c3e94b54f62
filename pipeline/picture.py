"""A picture made ready for email, as data: what the context, the picture
cache, the renderer and the site keep and pass around, without Pillow.

Making one is :mod:`pipeline.images`' job, and it loads Pillow's decoders
and colour management to do it; everything that only holds, sizes, names or
keys a made picture imports this module instead, so that a command whose
pictures were all made before (`publish check` while writing, a site
rebuild) never loads them.

    Picture(bytes, format, width, height, source digest)
    shown_size, file_size     the CSS size it is shown at, the pixel size it is made at
    published_name            the name it is published under
    RECIPE                    everything else its bytes depend on (a cache key)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

import PIL  # the package only, for its version: not its decoders

SHOWN_WIDTH = 544
"""The widest a picture is shown, in CSS pixels: the email's 600 px column
less the 28 px padding on each side of its text and figures
(templates/email.mjml.j2); the web page shows the same."""
FILE_WIDTH = 2 * SHOWN_WIDTH
"""The widest a published picture is, in pixels: two for each CSS pixel."""
JPEG_QUALITY = 82
DRAWING_COLOURS = 4096
"""A picture from a lossless file with at most this many colours is a
drawing (its anti-aliased edges add a few hundred); a photograph has tens of
thousands."""
MAX_SOURCE_BYTES = 50 * 1024 * 1024
"""The largest source file read at all."""
PICTURE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".heic", ".heif", ".avif", ".bmp"}
    | {".tif", ".tiff"}
)
"""The file names made ready for email; any other file is published as it is."""
SUFFIXES = {"JPEG": (".jpg", ".jpeg", ".jpe"), "PNG": (".png",)}
"""The suffixes a published picture's name may end in, the first one added
when its source's name ends otherwise."""
RECIPE = f"1 {FILE_WIDTH}px q{JPEG_QUALITY} {DRAWING_COLOURS} colours Pillow {PIL.__version__}"
"""Everything besides its source that a made picture's bytes depend on.
pillow-heif's version is left out: it only decodes HEIC photos, and leaving
it out lets a command whose pictures were all made before skip loading it
(a fifth of `publish check`'s time); a picture made by an older decoder
stays valid."""


@dataclass(frozen=True)
class Picture:
    """A picture made ready for email: the bytes the site publishes."""

    data: bytes = field(repr=False)
    format: str
    """``JPEG`` or ``PNG``."""
    width: int
    """The file's width in pixels (at most :data:`FILE_WIDTH`)."""
    height: int
    source_sha256: str
    """The digest of the bytes it was made from."""

    @property
    def shown_width(self) -> int:
        """The width it is shown at, in CSS pixels: :data:`SHOWN_WIDTH`, or
        its own width in pixels if it has fewer (never enlarged)."""
        return shown_size(self.width, self.height)[0]

    @property
    def shown_height(self) -> int:
        return shown_size(self.width, self.height)[1]


def shown_size(width: int, height: int) -> tuple[int, int]:
    """The CSS size a picture of ``width`` × ``height`` pixels is shown at."""
    shown = min(width, SHOWN_WIDTH)
    return shown, max(1, round(height * shown / width))


def file_size(width: int, height: int) -> tuple[int, int]:
    """The pixel size a source of ``width`` × ``height`` (upright) is published at."""
    made = min(width, FILE_WIDTH)
    return made, max(1, round(height * made / width))


def published_name(name: str, picture: Picture) -> str:
    """``name`` ending in a suffix of the picture's format: kept if it does
    already, else with one added (``IMG_2041.HEIC`` → ``IMG_2041.HEIC.jpg``),
    so that no two sources are published under one name."""
    if PurePosixPath(name).suffix.lower() in SUFFIXES[picture.format]:
        return name
    return name + SUFFIXES[picture.format][0]
