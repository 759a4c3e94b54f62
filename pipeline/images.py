"""Pictures made ready for email: a pure function from a file's bytes to
the bytes the site publishes, and the size they are shown at.

A phone saves a photo for the phone: 4000 pixels wide, several megabytes,
turned by an EXIF tag rather than in its pixels, and carrying the camera,
the time and the GPS position of where it was taken. A reader's mail client
needs something else, so every picture an issue uses goes out made over:

    bytes ─ open ─────────── JPEG, PNG, GIF, WebP, HEIC, AVIF, BMP or TIFF, its size
      │                      checked before a pixel is decoded (MAX_PIXELS)
      ├ turn upright ─────── the EXIF orientation applied to the pixels
      ├ sRGB ─────────────── a colour profile (an iPhone's Display P3) converted
      ├ shrink ───────────── to FILE_WIDTH, twice the SHOWN_WIDTH it is shown at,
      │                      so it is sharp on a high-density screen; never enlarged
      └ encode ───────────── JPEG for a photograph (quality 82, progressive,
                             optimized), PNG for a drawing (alpha, or few colours:
                             optimized, a palette when every colour fits in one);
                             no EXIF, GPS, XMP, ICC profile or comment is kept
                          ─▶ Picture(bytes, format, width, height)

The same bytes in give the same bytes out (no encoder here writes a time),
so an unchanged picture is published byte for byte as before, and the
site's cache (:mod:`pipeline.site.cache`) keys a made picture by the digest
of its source and by :data:`RECIPE`. A file that is not a picture Pillow can
read, is cut short, or claims more pixels than :data:`MAX_PIXELS` raises
:class:`~pipeline.errors.ImageError` naming the file. Reading the source is
the context's job (:mod:`pipeline.context`), writing the result the site
writer's: nothing here touches a file.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import warnings
from functools import cache
from pathlib import Path

from PIL import Image, ImageChops, ImageCms, ImageOps, UnidentifiedImageError

from pipeline.errors import ImageError
from pipeline.picture import (
    DRAWING_COLOURS,
    FILE_WIDTH,
    JPEG_QUALITY,
    MAX_SOURCE_BYTES,
    PICTURE_SUFFIXES,
    RECIPE,
    SHOWN_WIDTH,
    SUFFIXES,
    Picture,
    file_size,
    published_name,
    shown_size,
)

__all__ = [  # what is pictures' own is re-exported from pipeline.picture
    "DRAWING_COLOURS",
    "FILE_WIDTH",
    "FORMATS",
    "JPEG_QUALITY",
    "MAX_PIXELS",
    "MAX_SOURCE_BYTES",
    "PICTURE_SUFFIXES",
    "RECIPE",
    "SHOWN_WIDTH",
    "SUFFIXES",
    "Picture",
    "file_size",
    "prepare_picture",
    "published_name",
    "shown_size",
]

MAX_PIXELS = 89_478_485
"""The most pixels a source may have (Pillow's own limit): a 20,000 × 20,000
"picture" of a few kilobytes would take gigabytes to decode."""
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "HEIF", "AVIF", "BMP", "TIFF")
"""The formats a source may be in (a JPEG with more pictures in it opens as
MPO); Pillow's other decoders are never run."""


@cache
def _open_heif() -> None:
    """Teach Pillow to open HEIC and HEIF photos, on the first picture made."""
    import pillow_heif

    pillow_heif.register_heif_opener()

_LOSSY = frozenset({"JPEG", "MPO", "HEIF", "AVIF"})
_ANIMATED = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
_TURNED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_ORIENTATION = 0x0112
# What Pillow's decoders raise for data that is not what its header says.
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def prepare_picture(data: bytes, name: Path) -> Picture:
    """``data`` (the file ``name``, for messages) made ready for email, or
    :class:`~pipeline.errors.ImageError` if it cannot be."""
    image, lossy, upright = _decode(data, name)
    image = _in_srgb(image)
    image = _plain_mode(image)
    drawing = _has_alpha(image) or (not lossy and image.getcolors(DRAWING_COLOURS) is not None)
    if image.mode in ("RGBA", "LA") and not _has_alpha(image):
        image = image.convert(image.mode[:-1])
    size = file_size(*upright)
    if image.size != size:
        image = _resized(image, size)
    encoded = _png(image) if drawing else _jpeg(image)
    return Picture(
        data=encoded,
        format="PNG" if drawing else "JPEG",
        width=size[0],
        height=size[1],
        source_sha256=hashlib.sha256(data).hexdigest(),
    )


def _decode(data: bytes, name: Path) -> tuple[Image.Image, bool, tuple[int, int]]:
    """The picture in ``data`` decoded and turned upright (a JPEG no larger
    than needed), whether its format is a lossy one, and its upright size
    before decoding."""
    _open_heif()
    try:
        with warnings.catch_warnings():
            # Above MAX_PIXELS Pillow only warns, up to twice that: the size is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(name, None, _too_large(f"{width} × {height} pixels"))
        frames = int(getattr(image, "n_frames", 1))
        if image.format in _ANIMATED and frames > 1:
            raise ImageError(
                name,
                None,
                f"an animated picture ({frames} frames), which would lose its "
                "animation: publish a still JPEG or PNG",
            )
        lossy = image.format in _LOSSY
        turned = image.getexif().get(_ORIENTATION, 1) in _TURNED
        upright = (height, width) if turned else (width, height)
        if image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, still at least as large as needed.
            wanted = file_size(*upright)
            image.draft(None, wanted[::-1] if turned else wanted)
        image.load()
        return ImageOps.exif_transpose(image), lossy, upright
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(name, None, _too_large(pixels)) from None
    except UnidentifiedImageError:
        raise ImageError(name, None, _unidentified(data)) from None
    except _UNREADABLE as exc:
        reason = str(exc) or type(exc).__name__
        raise ImageError(name, None, f"not a picture Pillow can read ({reason})") from None


def _too_large(pixels: str) -> str:
    return f"{pixels} is more than the {MAX_PIXELS:,} a picture may have: make it smaller first"


def _unidentified(data: bytes) -> str:
    """Why Pillow opened no picture: a format it knows but this site does
    not publish, or no picture at all."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = Image.open(io.BytesIO(data)).format
    except Exception:  # only naming the format: any failure means there is none
        found = None
    if found:
        return f"a picture in {found} format, which is not published: save it as JPEG or PNG"
    return "not a picture Pillow can read (no JPEG, PNG, GIF, WebP, HEIC, AVIF, BMP or TIFF in it)"


def _in_srgb(image: Image.Image) -> Image.Image:
    """``image`` converted to sRGB from the colour profile it carries, which
    is dropped with the rest of its metadata: most mail clients ignore one."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        if "srgb" in ImageCms.getProfileDescription(source).lower().replace(" ", ""):
            return image  # sRGB already: converting would only round
        converted = ImageCms.profileToProfile(
            image,
            source,
            ImageCms.createProfile("sRGB"),
            outputMode="RGBA" if image.mode == "RGBA" else "RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: the pixels as they are
    return converted if converted is not None else image


def _plain_mode(image: Image.Image) -> Image.Image:
    """``image`` as L, LA, RGB or RGBA: the modes resizing and both encoders take."""
    transparent = "transparency" in image.info
    if image.mode == "P":
        alpha = transparent or (image.palette is not None and image.palette.mode == "RGBA")
        return image.convert("RGBA" if alpha else "RGB")
    if image.mode in ("L", "RGB") and transparent:
        return image.convert("LA" if image.mode == "L" else "RGBA")
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if image.mode.startswith("I"):
        # 16-bit grey: Pillow's own conversion would clip everything above 255 to white.
        return image.convert("I").point(lambda value: value / 257).convert("L")
    if image.mode in ("1", "F"):
        return image.convert("L")
    if image.mode in ("PA", "La"):
        return image.convert("LA" if image.mode == "La" else "RGBA")
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def _has_alpha(image: Image.Image) -> bool:
    """Whether ``image`` has a pixel that is not fully opaque."""
    if image.mode not in ("RGBA", "LA"):
        return False
    lowest = image.getchannel("A").getextrema()[0]
    return isinstance(lowest, int) and lowest < 255


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size``; with alpha premultiplied meanwhile, so that
    the colour of invisible pixels does not bleed into the edges."""
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(image.mode)
    work = image.convert(premultiplied) if premultiplied else image
    work = work.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return work.convert(image.mode) if premultiplied else work


def _jpeg(image: Image.Image) -> bytes:
    plain = image if image.mode in ("L", "RGB") else image.convert("RGB")
    plain.info = {}
    out = io.BytesIO()
    plain.save(out, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    plain = _palette(image) or image
    plain.info = {}
    plain.save(out, "PNG", optimize=True)
    return out.getvalue()


def _palette(image: Image.Image) -> Image.Image | None:
    """``image`` with a palette of its colours, if they fit in one (256) and
    not one pixel changes; else None."""
    if image.mode not in ("RGB", "RGBA"):
        return None  # grey is one byte a pixel already
    colours = image.getcolors(256)
    if colours is None:
        return None
    method = Image.Quantize.FASTOCTREE if image.mode == "RGBA" else Image.Quantize.MEDIANCUT
    quantized = image.quantize(len(colours), method=method, dither=Image.Dither.NONE)
    if ImageChops.difference(quantized.convert(image.mode), image).getbbox() is not None:
        return None
    return quantized
