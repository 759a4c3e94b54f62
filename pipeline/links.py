"""Where an issue's relative links and images point, answered from an index.

A relative target names a file in the newsletter: an image next to the issue
or in ``issues/images/``, another issue by its ``.md`` file. The
:class:`Resolver` turns it into an absolute URL on the site, and each file it
names into an :class:`Asset` that the site copies.

"Is there such a file?" is asked of a :class:`FileIndex`: every folder, file
and symbolic link under issues/, listed once when the command built its
context (:mod:`pipeline.context`), which resolves a path the way the file
system would. So resolving never touches the file system, and asking about
one target twice costs nothing.

    "images/calf.png" ─ Resolver.local_file ─ FileIndex.find ─▶ /…/issues/images/calf.png
                      ─ Resolver.url ──────────────────────▶ https://site/media/images/calf.png
                      ─ Resolver.picture ─ FileIndex.pictures ─▶ Picture (its size as shown)

A picture is published as the context made it ready for email
(:mod:`pipeline.images`), under a name that ends as its format does
(``IMG_2041.HEIC`` → ``media/images/IMG_2041.HEIC.jpg``); any other file is
copied as it is.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from pipeline.errors import ImageError
from pipeline.picture import published_name

if TYPE_CHECKING:
    from pipeline.picture import Picture

SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_TOO_LONG = os.strerror(errno.ENAMETOOLONG)


@dataclass(frozen=True)
class Asset:
    """A local file the site must publish at ``public_path``."""

    source: Path
    """The file under issues/, which stays as the editor saved it."""
    public_path: str
    picture: Picture | ImageError | None = None
    """For a picture, what is published instead of the file (or why nothing
    can be); None for any other file."""

    @property
    def content(self) -> bytes | Path:
        """What the site publishes: a picture's bytes, or the file to copy;
        the :class:`ImageError` of a picture that cannot be made ready."""
        if isinstance(self.picture, ImageError):
            raise self.picture.with_traceback(None)
        return self.source if self.picture is None else self.picture.data


@dataclass(frozen=True)
class FileIndex:
    """The files under issues/ as the command found them.

    A path is resolved the way the file system resolves it, one folder at a
    time: a symbolic link found on the way is replaced by where it led,
    ``..`` goes up from where that is. ``links`` holds every symbolic link
    under issues/ (and the paths the command was given, and how the settings
    spell issues/) with where it led; ``folders`` and ``files`` every folder
    and regular file, by resolved path.
    """

    root: Path
    """issues/, resolved."""
    cwd: Path
    """The working directory relative paths were given from."""
    links: Mapping[str, Path] = field(default_factory=dict)
    folders: frozenset[Path] = frozenset()
    files: frozenset[Path] = frozenset()
    unreadable: Mapping[Path, str] = field(default_factory=dict)
    """Folders that could not be listed, with why: nothing in them is known."""
    name_max: int = 255
    path_max: int = 4096
    pictures: Mapping[Path, Picture | ImageError] = field(default_factory=dict)
    """By resolved path, each picture an issue uses made ready for email,
    or why it cannot be."""

    def resolve(self, path: Path) -> Path:
        """The path ``path`` resolves to, as it did when the index was made;
        beyond what the index knows, as it is written."""
        full = self.cwd / path
        known = self.links.get(str(full))
        if known is not None:
            return known
        current = Path(full.anchor)
        for part in full.parts[1:]:
            current = current.parent if part == ".." else current / part
            current = self.links.get(str(current), current)
        return current

    def is_file(self, resolved: Path) -> bool:
        """Whether ``resolved`` was a regular file under issues/."""
        return resolved in self.files

    def find(self, candidate: Path) -> tuple[Path | None, str | None]:
        """(the file under issues/ at ``candidate``, or None; why the file
        system could not look there, or None)."""
        resolved = self.resolve(candidate)
        if len(os.fsencode(resolved)) >= self.path_max:
            return None, _TOO_LONG
        folder = Path(resolved.anchor)
        for part in resolved.parts[1:]:
            if folder in self.unreadable:
                return None, self.unreadable[folder]
            if folder.is_relative_to(self.root) and folder not in self.folders:
                return None, None  # a folder on the way is not there
            if len(os.fsencode(part)) > self.name_max:
                return None, _TOO_LONG
            folder = folder / part
        if resolved in self.files and resolved.is_relative_to(self.root):
            return resolved, None
        return None, None


class Resolver:
    """Turns the targets written in an issue into absolute URLs.

    ``issue_url`` maps another issue's file to its page URL, so that a link
    to ``2026-11-15-neck.md`` points at that issue on the site.
    """

    def __init__(
        self,
        issue_path: Path,
        files: FileIndex,
        site_url: str,
        issue_url: Callable[[Path], str] | None = None,
    ) -> None:
        self.files = files
        self.issue_dir = files.resolve(issue_path.parent)
        self.issues_dir = files.root
        self.site_url = site_url.rstrip("/")
        self.issue_url = issue_url
        self.assets: dict[str, Asset] = {}
        self._made: dict[str, Picture] = {}
        """Each picture's URL as :meth:`url` made it."""
        self._files: dict[str, Path | None] = {}
        self._problems: dict[str, str] = {}

    def local_file(self, target: str) -> Path | None:
        """The file a relative target names, or None when there is none.

        Linting and rendering ask about the same targets several times; the
        index is asked once per target."""
        if target not in self._files:
            self._files[target] = self._find(target)
        return self._files[target]

    def problem(self, target: str) -> str | None:
        """Why ``target`` can name no file at all (a NUL character, a name
        too long), or None; asked after :meth:`local_file` found none."""
        self.local_file(target)
        return self._problems.get(target)

    def _find(self, target: str) -> Path | None:
        path_part = urlsplit(target).path
        if not path_part:
            return None
        relative = unquote(path_part)
        if "\x00" in relative:
            self._problems[target] = "it contains a NUL character (%00), which no file name can"
            return None
        candidates = [self.issue_dir / relative]
        if "/" not in relative:
            candidates.append(self.issues_dir / "images" / relative)
        for candidate in candidates:
            found, reason = self.files.find(candidate)
            if found is not None:
                return found
            if reason is not None:
                self._problems[target] = f"the system cannot look it up ({reason})"
        return None

    def is_relative(self, target: str) -> bool:
        return bool(target) and not SCHEME.match(target) and not target.startswith(("//", "#"))

    def url(self, target: str) -> str:
        """An absolute URL for ``target``; relative ones must name a local file."""
        target = target.strip()
        if not self.is_relative(target):
            return target
        local = self.local_file(target)
        if local is None:
            return target  # lint reports it; render refuses it
        fragment = urlsplit(target).fragment
        if local.suffix == ".md" and self.issue_url is not None:
            url = self.issue_url(local)
        else:
            public_path = "media/" + posixpath.join(*local.relative_to(self.issues_dir).parts)
            picture = self.files.pictures.get(local)
            if picture is not None and not isinstance(picture, ImageError):
                public_path = published_name(public_path, picture)
            self.assets.setdefault(public_path, Asset(local, public_path, picture))
            url = f"{self.site_url}/{quote(public_path)}"
            if picture is not None and not isinstance(picture, ImageError):
                self._made[url] = picture
        return f"{url}#{fragment}" if fragment else url

    def picture(self, target: str) -> Picture | None:
        """The picture ``target`` names as made ready for email (its size as
        shown: :attr:`Picture.shown_width`): a relative target, or the URL
        :meth:`url` made of one. None for a remote image, a file that is no
        picture, or one that cannot be made ready."""
        target = target.strip()
        if not self.is_relative(target):
            return self._made.get(target.split("#", 1)[0])
        local = self.local_file(target)
        picture = self.files.pictures.get(local) if local is not None else None
        return None if isinstance(picture, ImageError) else picture
