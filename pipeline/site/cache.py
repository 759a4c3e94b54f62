"""The page cache: which issue pages of the last build can be used again.

Rendering an issue costs a few milliseconds, so a rebuild reuses the page of
every issue whose inputs are unchanged since the last build. A page is made
from:

* its issue's file, path and text, and the issues the site puts around it
  (:class:`~pipeline.webpage.Neighbours`: the previous and next issue, the
  latest ones): together with the fingerprint they make the page's *key*;
* the site's fingerprint (:func:`site_fingerprint`): the web templates, the
  settings a page shows (:func:`page_settings`, and no others), the code that
  renders it and the manifest's version;
* the slugs of the issues its text links to, recorded with the page;
* its images and files, which must still be there, each picture made from
  the same bytes (its size is in the page).

The last build's manifest, ``public/.publish-site.json``, records each page's
key, hash, excerpt, feed HTML, assets and links. :func:`read_last_build`
reads it, and the pages it lists, into a :class:`LastBuild`: plain data that
planning takes as an argument, so planning never reads public/ itself.

It also records each picture it published, by the digest of its source and
the :data:`~pipeline.picture.RECIPE` it was made with, so that a picture is
made once: :func:`published_pictures` hands the context the ones still in
public/ as they were written, and the context makes only the others.

    public/.publish-site.json  ─┐
    public/issues/*/index.html ─┴─ read_last_build ─▶ LastBuild
    public/media/* pictures ───── published_pictures ─▶ Picture by source digest (context.py)
    LastBuild + Issue + key ─ reuse ─▶ Page (or None: render it again)
    Pages ─ manifest ─▶ what the writer saves as public/.publish-site.json
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.context import Context
from pipeline.errors import ImageError
from pipeline.issue import Issue
from pipeline.links import Asset, FileIndex
from pipeline.picture import RECIPE, Picture
from pipeline.site.selection import Selection
from pipeline.templates import WebTemplates
from pipeline.webpage import Neighbours

MANIFEST = ".publish-site.json"
MANIFEST_VERSION = 1
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Page:
    """One issue rendered for the site, as remembered in the manifest."""

    key: str
    page: bytes
    excerpt: str
    content_html: str | None
    """The feed item's HTML, for an issue in the feeds only."""
    assets: tuple[Asset, ...]
    links: Mapping[str, str]
    """Each issue file the page links to, by path, with the slug it had."""

    def record(self) -> dict[str, Any]:
        """The page as the manifest remembers it (its bytes only as a hash)."""
        record = {
            "key": self.key,
            "sha256": hashlib.sha256(self.page).hexdigest(),
            "excerpt": self.excerpt,
            "assets": [[a.public_path, str(a.source), _made_from(a)] for a in self.assets],
            "links": dict(sorted(self.links.items())),
        }
        if self.content_html is not None:
            record["content"] = self.content_html
        return record


@dataclass(frozen=True)
class LastBuild:
    """What the last build left in public/, read before planning."""

    files: tuple[str, ...] = ()
    """Every file it wrote; those this build no longer has are removed."""
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each issue page it made, by slug, as :meth:`Page.record` wrote it."""
    pages: Mapping[str, bytes] = field(default_factory=dict)
    """By slug, the bytes of each of those pages that is still on disk exactly
    as it was written: a page edited by hand is missing, so it is made again."""


NO_BUILD = LastBuild()
"""A first build: nothing to reuse, nothing to remove."""


def read_last_build(public_dir: Path) -> LastBuild:
    """The last build's manifest and pages; :data:`NO_BUILD` if there is no
    manifest, or one this version cannot read."""
    manifest = _read_manifest(public_dir)
    issues = manifest.get("issues")
    records = {
        slug: record
        for slug, record in (issues.items() if isinstance(issues, dict) else ())
        # Only an issue's own slug: a hand-edited manifest never makes us
        # read outside public/issues/.
        if isinstance(record, dict) and _SLUG.fullmatch(slug)
    }
    pages: dict[str, bytes] = {}
    for slug, record in records.items():
        try:
            page = (public_dir / "issues" / slug / "index.html").read_bytes()
        except OSError:
            continue
        if hashlib.sha256(page).hexdigest() == record.get("sha256"):
            pages[slug] = page
    files = manifest.get("files")
    return LastBuild(
        files=tuple(str(path) for path in files) if isinstance(files, list) else (),
        records=records,
        pages=pages,
    )


def _read_manifest(public_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((public_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {}
    return data


def manifest(fingerprint: str, files: Iterable[str], pages: Mapping[str, Page]) -> dict[str, Any]:
    """The manifest of a build that wrote ``files`` and made ``pages`` (by slug)."""
    pictures = {
        asset.public_path: {
            "source": str(asset.source),
            "source_sha256": asset.picture.source_sha256,
            "recipe": RECIPE,
            "sha256": hashlib.sha256(asset.picture.data).hexdigest(),
            "format": asset.picture.format,
            "width": asset.picture.width,
            "height": asset.picture.height,
        }
        for page in pages.values()
        for asset in page.assets
        if isinstance(asset.picture, Picture)
    }
    return {
        "version": MANIFEST_VERSION,
        "fingerprint": fingerprint,
        "files": sorted(files),
        "issues": {slug: page.record() for slug, page in pages.items()},
        "pictures": dict(sorted(pictures.items())),
    }


def published_pictures(public_dir: Path) -> dict[str, Picture]:
    """The pictures the last build published that are still in
    ``public_dir`` exactly as it wrote them and were made as this code
    makes them, by the digest of their source."""
    records = _read_manifest(public_dir).get("pictures")
    found: dict[str, Picture] = {}
    for public_path, record in records.items() if isinstance(records, dict) else ():
        try:
            if record["recipe"] != RECIPE or not str(public_path).startswith("media/"):
                continue
            target = (public_dir / public_path).resolve()
            if not target.is_relative_to((public_dir / "media").resolve()):
                continue  # a hand-edited manifest never makes us read outside public/media/
            data = target.read_bytes()
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                continue
            found[str(record["source_sha256"])] = Picture(
                data=data,
                format=str(record["format"]),
                width=int(record["width"]),
                height=int(record["height"]),
                source_sha256=str(record["source_sha256"]),
            )
        except (OSError, KeyError, TypeError, ValueError):
            continue
    return found


def _made_from(asset: Asset) -> str:
    """The digest of the bytes an asset's picture was made from; "" for a file copied as it is."""
    return asset.picture.source_sha256 if isinstance(asset.picture, Picture) else ""


def page_settings(settings: Settings) -> dict[str, str]:
    """The settings an issue's page is made from, and only those.

    These are what the page's template is filled with (the newsletter and
    the site's addresses, the issue's author, the signup form's consent
    wording), the site URL every link resolves against, and the folder the
    issue's relative links and images resolve in. How and where mail goes
    out (sender, transport, rate, SES, SMTP, the outbox), the database, the
    web service and the secrets never shape a page, so a change to them
    renders nothing again. The site's own pages and feeds are made afresh
    on every build and need no entry here.
    """
    return {
        "name": settings.name,
        "description": settings.description,
        "site_url": settings.site_url,
        "language": settings.language,
        "postal_address": settings.postal_address,
        "author": settings.author,
        "forum_url": settings.forum_url,
        "blog_url": settings.blog_url,
        "consent_text": settings.consent_text,
        "issues_dir": str(settings.issues_dir),
    }


def site_fingerprint(context: Context) -> str:
    """Everything besides the issue file that shapes an issue's page."""
    shown = json.dumps(page_settings(context.settings), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(f"{MANIFEST_VERSION}\0{_code_fingerprint()}\0{shown}".encode())
    digest.update(_templates_digest(context.web))
    return digest.hexdigest()


def _templates_digest(web: WebTemplates) -> bytes:
    """The web templates' names and sources: an issue's page extends and
    includes others, so an edit to any of them makes every page again."""
    env = web.env
    assert env.loader is not None, "load_web_templates gives it one"
    digest = hashlib.sha256()
    for name in env.loader.list_templates():
        source, _, _ = env.loader.get_source(env, name)
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    return digest.digest()


@cache
def _code_fingerprint() -> str:
    """The source of pipeline's modules and of this package, and the
    renderers' versions: a change to either invalidates every remembered page."""
    from importlib.metadata import PackageNotFoundError, version

    here = Path(__file__).resolve().parent
    package = here.parent
    digest = hashlib.sha256()
    for path in sorted([*package.glob("*.py"), *here.glob("*.py")]):
        name = path.relative_to(package).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes())
    for dependency in ("mjml-python", "markdown-it-py", "mdit-py-plugins", "jinja2"):
        try:
            digest.update(f"{dependency}={version(dependency)}".encode())
        except PackageNotFoundError:  # pragma: no cover
            digest.update(dependency.encode())
    return digest.hexdigest()


def page_key(fingerprint: str, issue: Issue, path: Path, around: Neighbours) -> str:
    """What a remembered page must have been made from to be used again
    (``path``: the issue file's resolved path; ``around``: the issues the page
    links to besides those of its text)."""
    parts = (fingerprint, str(path), issue.source, repr(around))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def reuse(
    last: LastBuild,
    issue: Issue,
    key: str,
    selection: Selection,
    in_feed: bool,
    files: FileIndex,
) -> Page | None:
    """The page from the last build, if nothing it was made from changed (and,
    for an issue in the feeds, with its feed HTML: an issue that just came
    into the feeds is rendered again).

    The key covers the fingerprint, so a page made under other templates,
    settings or code never matches. Its images and files must be among
    ``files``, the files under issues/ as the command found them, and each
    picture made from the bytes it was made from then: the page shows its size.
    """
    record = last.records.get(issue.slug)
    page = last.pages.get(issue.slug)
    if record is None or page is None or record.get("key") != key:
        return None
    try:
        links = dict(record["links"])
        for path, slug in links.items():
            if selection.slug_of(Path(path)) != slug:
                return None
        assets = []
        for public, source, made_from in record["assets"]:
            path = Path(source)
            picture = files.pictures.get(path)
            if isinstance(picture, ImageError) or not files.is_file(path):
                return None
            asset = Asset(path, str(public), picture)
            if _made_from(asset) != made_from:
                return None
            assets.append(asset)
        return Page(
            key=key,
            page=page,
            excerpt=str(record["excerpt"]),
            content_html=str(record["content"]) if in_feed else None,
            assets=tuple(assets),
            links=links,
        )
    except (KeyError, TypeError, ValueError):
        return None
