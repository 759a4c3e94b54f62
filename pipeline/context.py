"""The context of one command: everything the pure stages read, read once.

As in Pelican, a command has two phases: build the context, then work from
it. :meth:`Context.load` is the only place the pipeline's pure stages get
their files from; parsing, linting, rendering, personalizing and planning
the site then take the context (or the parts of it they need) and touch
neither the file system nor the network.

    Settings ─ Context.load ─▶ Context
                 ├─ load_email_templates ─▶ templates  the email templates in memory: a
                 │                                     Jinja environment, their digest,
                 │                                     their unknown MJML elements
                 ├─ load_web_templates ───▶ web        the site's templates and static files
                 └─ the issues/ folder ───▶ issues     IssueIndex: every file under issues/
                                                       (FileIndex), each issue file's text
                                                       and each issue's slug
                        └─ load_pictures ─────▶ issues.files.pictures: each picture an
                                                       issue uses, made ready for email

    Context ─▶ parse_issue_file, check_issue, render_issue, Personalizer, plan_site

A template that cannot be read is kept as its error and raised where it is
used, so that ``publish check`` still reports it as a finding of every issue.
Each command builds a fresh context: an edited issue or template is picked up
by the next one. What the ledger knows of sends is not here: only the site
build needs it, and it reads it itself (:func:`pipeline.site.build_site_from_ledger`).

Pictures are made here, once, so that rendering knows the size each is
shown at and linting what they weigh. Each picture an issue links to or
shows is read and, unless the picture cache kept one made from the same
bytes (:mod:`pipeline.picturecache`) or the last build of the site
published one (:func:`pipeline.site.cache.published_pictures`), made ready
for email by :func:`pipeline.images.prepare_picture`. One that cannot be is
kept as its :class:`ImageError`, raised where it is published. The site's
manifest and Pillow are loaded only for a picture the cache does not have.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.body import markdown
from pipeline.config import Settings
from pipeline.errors import ImageError, IssueError, LocatedError
from pipeline.issue import (
    Issue,
    IssueBody,
    IssueFile,
    default_slug,
    find_issue_files,
    parse_issue_file,
    read_issue_text,
    strict,
    unreadable,
)
from pipeline.links import FileIndex, Resolver
from pipeline.templates import (
    Templates,
    WebTemplates,
    load_email_templates,
    load_web_templates,
)

if TYPE_CHECKING:
    from pipeline.picture import Picture

PICTURE_CACHE = Path(".cache") / "pictures"
"""Where, under the newsletter's root, pictures made ready are kept
between commands (:mod:`pipeline.picturecache`)."""


@dataclass(frozen=True)
class IssueIndex:
    """The issues/ folder as the command found it."""

    files: FileIndex
    """Every file under issues/, for the resolver."""
    paths: tuple[Path, ...] = ()
    """The issue files in issues/, by name (so by date)."""
    given: tuple[Path, ...] = ()
    """Issue files the command was given by path, wherever they are."""
    texts: Mapping[Path, str | IssueError] = field(default_factory=dict)
    """By resolved path, each issue file's text (or why it could not be
    read): every ``.md`` under issues/, and the given ones."""
    slugs: Mapping[Path, str] = field(default_factory=dict)
    """By resolved path, the slug of each of those files that parses."""
    parsed: Mapping[Path, IssueFile] = field(default_factory=dict)
    """Each issue file as parsed when it was read, by the path it was read as."""

    def read(self, path: Path) -> IssueFile:
        """The issue file at ``path`` parsed (see :func:`parse_issue_file`)."""
        if path in self.parsed:
            return self.parsed[path]
        text = self.texts.get(self.files.resolve(path))
        if text is None:
            raise LookupError(f"{path}: not among the issue files this command read")
        if isinstance(text, IssueError):
            return unreadable(path, IssueError(path, text.line, text.message))
        return parse_issue_file(path, text)

    def load(self, path: Path) -> Issue:
        """The issue at ``path``, or :class:`IssueError` for its first error."""
        return strict(self.read(path))

    def slug_of(self, path: Path) -> str:
        """The slug a link to the issue file at ``path`` (resolved) points at:
        its front matter's, or its file name's."""
        return self.slugs.get(path) or default_slug(path)

    def issue_slugs(self) -> dict[Path, str]:
        """By resolved path, the slug of every issue file in issues/ and of
        every given one, for finding two that share one."""
        slugs: dict[Path, str] = {}
        for path in (*self.paths, *self.given):
            resolved = self.files.resolve(path)
            slugs[resolved] = self.slug_of(resolved)
        return slugs


@dataclass(frozen=True)
class Context:
    """What a command's pure stages work from; built once, never changed."""

    settings: Settings
    issues: IssueIndex
    email: Templates | LocatedError
    """The email templates, or why they cannot be loaded."""
    site: WebTemplates | LocatedError
    """The site's templates, or why they cannot be loaded."""

    @property
    def templates(self) -> Templates:
        """The email templates; :class:`TemplateError` if they cannot be loaded."""
        if isinstance(self.email, LocatedError):
            raise self.email.with_traceback(None)
        return self.email

    @property
    def web(self) -> WebTemplates:
        """The site's templates; :class:`TemplateError` if they cannot be loaded."""
        if isinstance(self.site, LocatedError):
            raise self.site.with_traceback(None)
        return self.site

    @classmethod
    def load(cls, settings: Settings, issue_paths: Iterable[Path] = ()) -> Context:
        """Read everything the command's pure stages need: the templates, and
        issues/ with every issue in it; ``issue_paths`` are issue files the
        command was given, which may lie outside issues/."""
        email: Templates | LocatedError
        site: WebTemplates | LocatedError
        try:
            email = load_email_templates(settings)
        except LocatedError as exc:
            email = exc
        try:
            site = load_web_templates(settings)
        except LocatedError as exc:
            site = exc
        issues = load_issue_index(
            settings.issues_dir,
            issue_paths,
            folders=(settings.root,),
            public_dir=settings.public_dir,
            picture_cache=settings.root / PICTURE_CACHE,
        )
        return cls(settings, issues, email, site)


def load_issue_index(
    issues_dir: Path,
    given: Iterable[Path] = (),
    *,
    folders: Iterable[Path] = (),
    public_dir: Path | None = None,
    picture_cache: Path | None = None,
) -> IssueIndex:
    """List every file under ``issues_dir``, read every issue file (each
    ``.md`` under it, or linked from it, and each of ``given``) and make
    ready the pictures they use (:func:`load_pictures`, reusing the ones the
    site in ``public_dir`` has); ``folders`` are more folders whose resolved
    paths the stages may ask for."""
    cwd = Path.cwd()
    root = issues_dir.resolve()
    links: dict[str, Path] = {}
    found = _Found(links)
    _walk(root, found)
    given = tuple(given)
    for path in (issues_dir, *given, *folders):
        full = cwd / path
        for spelled in (full, full.parent):
            links.setdefault(str(spelled), Path(os.path.realpath(spelled)))
    name_max, path_max = _limits(root)
    index = FileIndex(
        root,
        cwd,
        links,
        frozenset(found.folders),
        frozenset(found.files),
        found.unreadable,
        name_max,
        path_max,
    )

    issue_files = tuple(find_issue_files(issues_dir))
    # Issue files are parsed once, under the path the command spells them
    # with (findings name it); other .md files under issues/ by resolved path.
    as_given = {index.resolve(path): path for path in (*issue_files, *given)}
    texts: dict[Path, str | IssueError] = {}
    slugs: dict[Path, str] = {}
    parsed_files: dict[Path, IssueFile] = {}
    bodies: list[IssueBody] = []
    markdown_files = sorted(path for path in found.files if path.suffix == ".md")
    for resolved in (*markdown_files, *as_given):
        if resolved in texts:
            continue
        try:
            text: str | IssueError = read_issue_text(resolved)
        except IssueError as exc:
            text = exc
        texts[resolved] = text
        if isinstance(text, str):
            path = as_given.get(resolved, resolved)
            parsed = parsed_files[path] = parse_issue_file(path, text)
            if parsed.issue is not None:
                slugs[resolved] = parsed.issue.slug
            if parsed.body is not None:
                bodies.append(parsed.body)
    pictures = load_pictures(index, bodies, public_dir, picture_cache)
    return IssueIndex(
        replace(index, pictures=pictures), issue_files, given, texts, slugs, parsed_files
    )


def load_pictures(
    index: FileIndex,
    bodies: Iterable[IssueBody],
    public_dir: Path | None = None,
    cache: Path | None = None,
) -> dict[Path, Picture | ImageError]:
    """Each picture file the issue ``bodies`` show or link to, by resolved
    path, made ready for email (or why it cannot be): the one kept in
    ``cache`` (:mod:`pipeline.picturecache`), or the one the site in
    ``public_dir`` published from the same bytes, else made now and kept.
    The same bytes always make the same picture, so where one is found
    changes nothing but the time it takes."""
    from pipeline import picturecache
    from pipeline.picture import MAX_SOURCE_BYTES

    used = sorted({path for body in bodies for path in _pictures_used(body, index)})
    if not used:
        return {}
    published: dict[str, Picture] | None = None  # read on the first picture not in cache
    pictures: dict[Path, Picture | ImageError] = {}
    for path in used:
        shown = _shown(path, index.cwd)
        try:
            size = path.stat().st_size
            if size > MAX_SOURCE_BYTES:
                weighs = f"{size / 2**20:.0f} MB is more than the {MAX_SOURCE_BYTES // 2**20} MB"
                raise ImageError(
                    shown, None, f"{weighs} a picture may weigh: make it smaller first"
                )
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            made = picturecache.find(cache, digest) if cache is not None else None
            if made is None:
                if published is None:
                    published = _published_pictures(public_dir)
                made = published.get(digest)
            if made is None:
                from pipeline.images import prepare_picture  # Pillow's decoders

                made = prepare_picture(data, shown)
                if cache is not None:
                    picturecache.keep(cache, made)
            pictures[path] = made
        except OSError as exc:
            pictures[path] = ImageError(shown, None, f"cannot be read: {exc.strerror or exc}")
        except ImageError as exc:
            pictures[path] = exc
    return pictures


def _published_pictures(public_dir: Path | None) -> dict[str, Picture]:
    """The pictures the site in ``public_dir`` published, by source digest."""
    if public_dir is None:
        return {}
    from pipeline.site.cache import published_pictures  # the site's package imports this one

    return published_pictures(public_dir)


def _pictures_used(body: IssueBody, index: FileIndex) -> Iterator[Path]:
    """The picture files under issues/ that ``body`` shows or links to."""
    from pipeline.picture import PICTURE_SUFFIXES

    resolver = Resolver(body.path, index, "")
    for token in markdown().parse(body.text):
        for child in token.children or ():
            target = child.attrGet("src") if child.type == "image" else child.attrGet("href")
            if not isinstance(target, str) or not resolver.is_relative(target.strip()):
                continue
            local = resolver.local_file(target.strip())
            if local is not None and local.suffix.lower() in PICTURE_SUFFIXES:
                yield local


def _shown(path: Path, cwd: Path) -> Path:
    """``path`` as a message names it: from the working directory when inside it."""
    try:
        return path.relative_to(cwd)
    except ValueError:
        return path


@dataclass
class _Found:
    """What walking issues/ found so far."""

    links: dict[str, Path]
    folders: set[Path] = field(default_factory=set)
    files: set[Path] = field(default_factory=set)
    unreadable: dict[Path, str] = field(default_factory=dict)


def _walk(folder: Path, found: _Found) -> None:
    """Note ``folder`` (a real folder, resolved) and everything in it: its
    files, its symbolic links with where they lead, and its folders, walked
    in turn. Links are not followed: whatever a link inside issues/ leads to
    inside issues/ is found by the walk itself."""
    if not folder.is_dir():
        return
    found.folders.add(folder)
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError as exc:
        found.unreadable[folder] = exc.strerror or str(exc)
        return
    for entry in entries:
        path = folder / entry.name
        if entry.is_symlink():
            found.links[str(path)] = Path(os.path.realpath(path))
        elif entry.is_dir(follow_symlinks=False):
            _walk(path, found)
        elif entry.is_file(follow_symlinks=False):
            found.files.add(path)


def _limits(root: Path) -> tuple[int, int]:
    """The longest file name and path the file system takes under ``root``."""
    try:
        return os.pathconf(root, "PC_NAME_MAX"), os.pathconf(root, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096
