"""Pictures made ready for email: shrunk, turned upright, stripped of EXIF and
GPS, JPEG or PNG, with their size in the HTML, made once, and refused with
one line naming the file when they are not pictures at all.

The pictures are made here with Pillow: a 4000 × 3000 phone photo with GPS
and Orientation=6 in its EXIF, a 500 px drawing with alpha, a HEIC photo
(when pillow-heif can write one), noise that no encoder can shrink.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import struct
import zlib
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

import pipeline.images
from pipeline.cli import app
from pipeline.context import Context
from pipeline.errors import ImageError
from pipeline.images import FILE_WIDTH, SHOWN_WIDTH, prepare_picture
from pipeline.lint import check_issue

SITE = "https://painfreeliving.example.com"
ISSUE = "2026-11-20-pictures.md"
GPS_IFD = 0x8825
ORIENTATION = 0x0112


def phone_photo(width: int = 4000, height: int = 3000, orientation: int = 6) -> bytes:
    """A photo as a phone saves it: large, a maker, GPS, an Orientation tag."""
    rng = random.Random(4)
    small = Image.new("RGB", (40, 30))
    small.putdata(
        [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(1200)]
    )
    photo = small.resize((width, height), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x0132] = "2026:11:19 08:15:00"
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (43.0, 39.0, 30.5), 3: "W", 4: (70.0, 15.0, 12.0)})
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def drawing() -> bytes:
    """A 500 px drawing on a transparent background."""
    image = Image.new("RGBA", (500, 320), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.ellipse((40, 40, 280, 280), fill=(47, 93, 69, 255))
    pen.line((0, 300, 500, 300), fill=(138, 164, 140, 255), width=12)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def noise(width: int, height: int, seed: int) -> bytes:
    """A PNG of noise: a photograph to the classifier, and one that stays heavy as JPEG."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3)).save(
        out, "PNG"
    )
    return out.getvalue()


def heic_photo() -> bytes:
    image = Image.open(io.BytesIO(phone_photo(3000, 2000, orientation=1))).convert("RGB")
    out = io.BytesIO()
    try:
        image.save(out, "HEIF", quality=70)
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"pillow-heif cannot write HEIC here ({exc})")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A few bytes whose PNG header claims ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def write_issue(newsletter: Path, body: str, name: str = ISSUE) -> Path:
    path = newsletter / "issues" / name
    path.write_text(
        "---\n"
        "title: Pictures from the clinic\n"
        "date: 2026-11-20\n"
        "preheader: The new treatment room, the stretch we drew for it, and the view from the window.\n"
        "publish_at: 2026-11-20T07:00:00+00:00\n"
        "---\n"
        f"{body}\n"
        "---\n\nWarmly,\nDana\n",
        encoding="utf-8",
    )
    return path


PICTURES_BODY = """The treatment room is ready.

![The treatment room, from the door](images/room.jpg "The new room")

We drew the stretch ![a small figure leaning on a wall](images/stretch.png) for the wall.
"""


@pytest.fixture
def pictures(newsletter: Path) -> dict[str, bytes]:
    """The photo and the drawing in issues/images/, used by a published issue."""
    sources = {"room.jpg": phone_photo(), "stretch.png": drawing()}
    for name, data in sources.items():
        (newsletter / "issues" / "images" / name).write_bytes(data)
    write_issue(newsletter, PICTURES_BODY)
    return sources


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def published(settings, name: str) -> Image.Image:
    return Image.open(io.BytesIO((settings.public_dir / "media" / "images" / name).read_bytes()))


# The pure function


def test_a_phone_photo_is_shrunk_turned_upright_and_stripped():
    source = phone_photo()
    picture = prepare_picture(source, Path("issues/images/room.jpg"))

    assert (picture.format, picture.width, picture.height) == ("JPEG", FILE_WIDTH, 1451)
    assert (picture.shown_width, picture.shown_height) == (SHOWN_WIDTH, 726)
    made = Image.open(io.BytesIO(picture.data))
    assert made.format == "JPEG" and made.size == (1088, 1451)  # portrait: Orientation=6 applied
    assert made.info.get("progressive") == 1
    assert dict(made.getexif()) == {}
    assert "exif" not in made.info and "icc_profile" not in made.info
    assert b"PhoneMaker" not in picture.data and b"GPS" not in picture.data
    assert len(picture.data) < len(source) / 4
    # The same bytes give the same bytes: nothing in them depends on when.
    assert prepare_picture(source, Path("x.jpg")) == picture


def test_a_drawing_stays_png_with_its_alpha_and_is_never_enlarged():
    picture = prepare_picture(drawing(), Path("stretch.png"))

    assert (picture.format, picture.width, picture.height) == ("PNG", 500, 320)
    assert (picture.shown_width, picture.shown_height) == (500, 320)
    made = Image.open(io.BytesIO(picture.data))
    assert made.mode == "P"  # three colours and transparency fit in a palette
    assert made.convert("RGBA").getpixel((0, 0)) == (0, 0, 0, 0)
    assert made.convert("RGBA").getpixel((160, 160)) == (47, 93, 69, 255)


def test_a_heic_photo_becomes_jpeg():
    picture = prepare_picture(heic_photo(), Path("view.heic"))
    assert (picture.format, picture.width, picture.height) == ("JPEG", FILE_WIDTH, 725)
    assert Image.open(io.BytesIO(picture.data)).format == "JPEG"


# Through the commands


def test_publish_site_publishes_pictures_ready_for_email(newsletter, settings, pictures):
    result = CliRunner().invoke(app, ["site"])
    assert result.exit_code == 0, result.output

    room = published(settings, "room.jpg")
    assert (room.format, room.size) == ("JPEG", (1088, 1451))
    assert dict(room.getexif()) == {} and "exif" not in room.info
    stretch = published(settings, "stretch.png")
    assert (stretch.format, stretch.size) == ("PNG", (500, 320))
    # The originals stay as the editor saved them.
    for name, data in pictures.items():
        assert (newsletter / "issues" / "images" / name).read_bytes() == data
    manifest = (settings.public_dir / ".publish-site.json").read_text()
    assert '"pictures"' in manifest and "GPS" not in manifest
    # The issue page shows them at the email's sizes, so it does not jump as they load.
    page = (settings.public_dir / "issues" / "pictures" / "index.html").read_text()
    tags = {m.group(1): m.group(0) for m in re.finditer(r'<img [^>]*src="([^"]+)"[^>]*>', page)}
    assert 'width="544" height="726"' in tags[f"{SITE}/media/images/room.jpg"]
    assert 'width="500" height="320"' in tags[f"{SITE}/media/images/stretch.png"]


def test_an_unchanged_rebuild_makes_and_writes_nothing_and_a_fresh_one_is_byte_identical(
    newsletter, settings, pictures, monkeypatch
):
    runner = CliRunner()
    assert runner.invoke(app, ["site"]).exit_code == 0
    before = snapshot(settings.public_dir)

    made: list[Path] = []
    real = pipeline.images.prepare_picture

    def counting(data: bytes, name: Path) -> pipeline.images.Picture:
        made.append(name)
        return real(data, name)

    monkeypatch.setattr(pipeline.images, "prepare_picture", counting)
    again = runner.invoke(app, ["site"])
    assert again.exit_code == 0, again.output
    assert " 0 files written" in again.stdout
    # The site's cache had both, by their sources' digests; the picture of
    # the draft (the calf issue, never sent here) was kept in .cache/pictures/.
    assert made == []
    assert snapshot(settings.public_dir) == before

    # Made afresh from nothing, every byte is the same.
    for path in sorted(settings.public_dir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    for path in (settings.root / ".cache" / "pictures").iterdir():
        path.unlink()
    made.clear()
    assert runner.invoke(app, ["site"]).exit_code == 0
    assert Path("issues/images/room.jpg") in made and Path("issues/images/stretch.png") in made
    fresh = snapshot(settings.public_dir)
    assert {name: data for name, (data, _) in fresh.items()} == {
        name: data for name, (data, _) in before.items()
    }


def test_a_changed_picture_is_made_again_and_its_page_made_with_it(newsletter, settings, pictures):
    runner = CliRunner()
    assert runner.invoke(app, ["site"]).exit_code == 0
    landscape = phone_photo(orientation=1)
    (newsletter / "issues" / "images" / "room.jpg").write_bytes(landscape)

    result = runner.invoke(app, ["site"])

    assert result.exit_code == 0, result.output
    assert published(settings, "room.jpg").size == (1088, 816)  # landscape now
    manifest = json.loads((settings.public_dir / ".publish-site.json").read_text())
    made_from = {public: digest for public, _, digest in manifest["issues"]["pictures"]["assets"]}
    assert made_from["media/images/room.jpg"] == hashlib.sha256(landscape).hexdigest()
    figure = re.search(r"<img [^>]*room\.jpg[^>]*>", render_email(settings))
    assert figure is not None and 'width="544"' in figure[0] and 'height="408"' in figure[0]


def render_email(settings) -> str:
    from pipeline.render import render_issue

    context = Context.load(settings)
    return render_issue(context.issues.load(settings.issues_dir / ISSUE), context).html


def test_publish_issue_sends_the_pictures_sizes_and_publishes_them(newsletter, settings, pictures):
    from subscribers.store import Store

    with Store.open(settings.database_url, settings.root) as store:
        store.add("reader@example.com", name="Zoë Reader")

    result = CliRunner().invoke(app, ["issue", f"issues/{ISSUE}", "--yes", "--transport", "outbox"])

    assert result.exit_code == 0, result.output
    (message_file,) = settings.outbox_dir.glob("*.eml")
    message = message_from_bytes(message_file.read_bytes(), policy=policy.default)
    body = message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    images = {m.group(1): m.group(0) for m in re.finditer(r'<img [^>]*src="([^"]+)"[^>]*>', html)}
    room = images[f"{SITE}/media/images/room.jpg"]
    assert 'width="544"' in room and 'height="726"' in room  # the figure, 1088 × 1451 at 2×
    stretch = images[f"{SITE}/media/images/stretch.png"]
    assert 'width="500"' in stretch and 'height="320"' in stretch  # in the text, never enlarged
    assert published(settings, "room.jpg").size == (1088, 1451)
    assert published(settings, "stretch.png").size == (500, 320)


def test_a_heic_photo_is_published_as_jpeg_under_a_name_that_says_so(newsletter, settings):
    (newsletter / "issues" / "images" / "view.heic").write_bytes(heic_photo())
    write_issue(newsletter, "The view.\n\n![The harbour from the window](images/view.heic)\n")

    result = CliRunner().invoke(app, ["site"])

    assert result.exit_code == 0, result.output
    view = published(settings, "view.heic.jpg")
    assert (view.format, view.size) == ("JPEG", (1088, 725))
    assert not (settings.public_dir / "media" / "images" / "view.heic").exists()
    page = (settings.public_dir / "issues" / "pictures" / "index.html").read_text()
    assert f"{SITE}/media/images/view.heic.jpg" in page


def test_check_warns_when_the_pictures_weigh_over_a_megabyte(newsletter, settings):
    for seed in (1, 2):
        (newsletter / "issues" / "images" / f"noise{seed}.png").write_bytes(noise(1088, 1000, seed))
    path = write_issue(
        newsletter,
        "Noise.\n\n![Static, once](images/noise1.png)\n\n![Static, twice](images/noise2.png)\n",
    )

    result = check_issue(path, Context.load(settings))

    (warning,) = [f for f in result.findings if "weigh" in f.message]
    assert warning.severity == "warning" and warning.path == path and warning.line == 9
    assert re.fullmatch(
        r"the 2 pictures weigh \d\.\d MB together, made ready for email; every reader "
        r"who opens it downloads them all: aim for under 1 MB",
        warning.message,
    )
    assert result.ok  # a warning, not an error


def test_light_pictures_raise_no_warning(newsletter, settings, pictures):
    result = check_issue(newsletter / "issues" / ISSUE, Context.load(settings))
    assert [f for f in result.findings if "weigh" in f.message] == []


def _truncated() -> bytes:
    photo = phone_photo(1200, 900, orientation=1)
    return photo[: len(photo) // 2]


def _corrupt() -> bytes:
    return b"\xff\xd8\xff\xe0" + random.Random(3).randbytes(4000)


def _unsupported() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 0, 0)).save(out, "ICO")
    return out.getvalue()


BAD = {
    "truncated": (_truncated, r"not a picture Pillow can read \(image file is truncated"),
    "corrupt": (_corrupt, r"not a picture Pillow can read \("),
    "bomb": (
        lambda: png_claiming(20_000, 20_000),
        r"400,000,000 pixels is more than the 89,478,485 a picture may have",
    ),
    "too many pixels": (
        lambda: png_claiming(10_000, 9_000),
        r"10000 × 9000 pixels is more than the 89,478,485 a picture may have",
    ),
    "unsupported": (_unsupported, r"a picture in ICO format, which is not published"),
    "not a picture": (lambda: b"<svg></svg>", r"not a picture Pillow can read \(no JPEG, PNG"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_picture_stops_publish_site_with_one_line_and_leaves_public_as_it_was(
    newsletter, settings, pictures, kind
):
    make, message = BAD[kind]
    runner = CliRunner()
    assert runner.invoke(app, ["site"]).exit_code == 0
    before = snapshot(settings.public_dir)
    (newsletter / "issues" / "images" / "room.jpg").write_bytes(make())

    result = runner.invoke(app, ["site"])

    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(rf"error: issues/images/room\.jpg: {message}.*", line), line
    assert snapshot(settings.public_dir) == before


@pytest.mark.parametrize("kind", ["truncated", "bomb", "unsupported"])
def test_a_bad_picture_is_an_error_of_publish_check_and_publish_issue(
    newsletter, settings, pictures, kind
):
    make, message = BAD[kind]
    (newsletter / "issues" / "images" / "room.jpg").write_bytes(make())
    runner = CliRunner()

    checked = runner.invoke(app, ["check", f"issues/{ISSUE}"])
    assert checked.exit_code == 1
    (line,) = [line for line in checked.stdout.splitlines() if "room.jpg" in line]
    assert re.fullmatch(rf"issues/{ISSUE}:9: error: issues/images/room\.jpg: {message}.*", line)

    sent = runner.invoke(app, ["issue", f"issues/{ISSUE}", "--yes", "--transport", "outbox"])
    assert sent.exit_code == 1
    assert line in sent.stderr.splitlines()
    assert not settings.public_dir.exists()


def test_a_bad_picture_no_issue_uses_stops_nothing(newsletter, settings):
    (newsletter / "issues" / "images" / "unused.jpg").write_bytes(b"not a picture")
    assert CliRunner().invoke(app, ["site"]).exit_code == 0
    assert not (settings.public_dir / "media" / "images" / "unused.jpg").exists()


def test_an_unusable_picture_is_kept_as_its_error_in_the_context(newsletter, settings, pictures):
    (newsletter / "issues" / "images" / "room.jpg").write_bytes(b"GIF89a")
    pictures_found = Context.load(settings).issues.files.pictures
    found = {path.name: value for path, value in pictures_found.items()}
    assert isinstance(found["room.jpg"], ImageError)
    assert str(found["room.jpg"]).startswith(
        "issues/images/room.jpg: not a picture Pillow can read"
    )
    stretch = found["stretch.png"]
    assert isinstance(stretch, pipeline.images.Picture) and stretch.format == "PNG"


def test_a_draft_s_pictures_are_made_once_and_kept_for_the_next_check(
    newsletter, settings, pictures, monkeypatch
):
    """An issue being written is checked again and again before it is
    published: its pictures are made once, kept in .cache/pictures/, and
    made again only when the source changes."""
    import pipeline.images

    made: list[str] = []
    real = pipeline.images.prepare_picture

    def counting(data: bytes, name: Path):  # type: ignore[no-untyped-def]
        made.append(name.name)
        return real(data, name)

    monkeypatch.setattr(pipeline.images, "prepare_picture", counting)
    path = newsletter / "issues" / ISSUE

    everyone = ["calf-stretch.png", "room.jpg", "stretch.png"]  # the sample issue's too
    first = Context.load(settings).issues.files.pictures
    assert sorted(made) == everyone
    again = Context.load(settings).issues.files.pictures
    assert sorted(made) == everyone  # nothing made the second time
    assert again == first and check_issue(path, Context.load(settings)).ok
    kept = sorted(p.suffix for p in (settings.root / ".cache" / "pictures").iterdir())
    assert kept == [".bin"] * 3 + [".json"] * 3

    (newsletter / "issues" / "images" / "room.jpg").write_bytes(phone_photo(orientation=1))
    Context.load(settings)
    assert sorted(made) == sorted([*everyone, "room.jpg"])  # the changed one only
    # A kept picture whose bytes were tampered with is made again, not served.
    for entry in (settings.root / ".cache" / "pictures").glob("*.bin"):
        entry.write_bytes(b"not the picture")
    fresh = Context.load(settings).issues.files.pictures
    assert len(made) == 7 and all(not isinstance(p, Exception) for p in fresh.values())
