"""Files as a command last saw them: how a later command tells that nothing
changed, mostly without reading a byte.

    listing(folder)                   every entry under folder, by path: a file's
                                      stat, a link's target, a folder
    with_digests(listing, taken_ns)   the same, each file's SHA-256 added, except
                                      for a file changed too recently to trust
                                      (and taken from an earlier listing for a
                                      file whose stat is as it recorded)
    unchanged(recorded, listing, taken_ns)
                                      the listing with the recorded digests if it
                                      holds what ``recorded`` held; else None

A file's *stat* is its inode, size, modification and change times. A stat
as recorded means the file is as recorded; any other stat, and the file's
SHA-256 decides, so a file touched, or copied back unchanged, is still
unchanged, and one rewritten with its old size and modification time (``touch
-r``, ``rsync -t``) is caught by its change time, which no program can set.

The assumption in trusting a stat: a file's bytes do not change without its
stat changing. That holds on a local file system, except for a second write
within one tick of the clock that stamped the first; so a stat less than
:func:`racy_window` old when it was recorded is never trusted, and such a
file is compared by its digest (or, when the digest was not taken, counted
as changed). Nothing here writes a file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Entry = dict[str, Any]
"""``{"stat": [ino, size, mtime_ns, ctime_ns], "sha256": hex or None}`` for a
file, ``{"link": target}`` for a symbolic link, ``{"dir": True}`` for a folder
(JSON-ready: the caller keeps listings in files)."""

RACY_NS = 20_000_000
"""How recent a stat may be before it is not trusted, on a file system that
stamps times finer than a second (ext4, XFS, Btrfs, APFS, NTFS): two ticks
of the coarsest clock Linux stamps files with (100 Hz)."""
COARSE_RACY_NS = 3_000_000_000
"""The same where times are whole seconds (ext3, HFS+, FAT's two seconds)."""


def stat_entry(path: Path) -> Entry | None:
    """What ``path`` is, not following a link; None if there is nothing there."""
    try:
        found = os.lstat(path)
        if stat.S_ISLNK(found.st_mode):
            return {"link": os.readlink(path)}
    except OSError:
        return None
    if stat.S_ISDIR(found.st_mode):
        return {"dir": True}
    return {
        "stat": [found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns],
        "sha256": None,
    }


def listing(folder: Path) -> dict[str, Entry]:
    """Every entry under ``folder`` (itself included, if it is there), by
    path as a string; links are noted, not followed."""
    found: dict[str, Entry] = {}
    top = stat_entry(folder)
    if top is None:
        return found
    found[str(folder)] = top
    if "dir" in top:
        _walk(folder, found)
    return found


def _walk(folder: Path, found: dict[str, Entry]) -> None:
    try:
        with os.scandir(folder) as entries:
            children = sorted(entries, key=lambda entry: entry.name)
    except OSError:
        found[str(folder)] = {"unreadable": True}
        return
    for child in children:
        path = Path(child.path)
        entry = stat_entry(path)
        if entry is None:
            continue
        found[str(path)] = entry
        if "dir" in entry:
            _walk(path, found)


def racy_window(times: list[int]) -> int:
    """Nanoseconds within which a change can leave a stat (``times``) as it was."""
    coarse = times[2] % 1_000_000_000 == 0 and times[3] % 1_000_000_000 == 0
    return COARSE_RACY_NS if coarse else RACY_NS


def is_racy(times: list[int], taken_ns: int) -> bool:
    """Whether a stat (``times``) taken at ``taken_ns`` (time.time_ns) is too
    fresh to trust."""
    return max(times[2], times[3]) >= taken_ns - racy_window(times)


def stat_holds(was: Entry, now: Entry, taken_ns: int) -> bool:
    """Whether a file listed as ``was`` at ``taken_ns`` is, by its stat
    alone, as it was: the stat is the same and was not too fresh to trust."""
    return was.get("stat") == now["stat"] and not is_racy(was["stat"], taken_ns)


def sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def with_digests(
    found: Mapping[str, Entry],
    taken_ns: int,
    known: Mapping[str, Entry] | None = None,
    known_ns: int = 0,
) -> dict[str, Entry]:
    """``found`` with each file's digest, read now, except where the stat
    was racy at ``taken_ns`` (then the digest stays None: a later command
    cannot know the file is what a build read). A file whose stat is as in
    ``known`` (an earlier listing, taken at ``known_ns``), and was not racy
    then, keeps the digest recorded there and is not read."""
    out: dict[str, Entry] = {}
    for path, entry in found.items():
        if "stat" in entry and not is_racy(entry["stat"], taken_ns):
            was = known.get(path) if known is not None else None
            if was is not None and was.get("sha256") and stat_holds(was, entry, known_ns):
                entry = {**entry, "sha256": was["sha256"]}
            else:
                entry = {**entry, "sha256": sha256_of(Path(path))}
        out[path] = entry
    return out


def unchanged(
    recorded: Mapping[str, Entry], found: Mapping[str, Entry], taken_ns: int
) -> dict[str, Entry] | None:
    """``found`` with the recorded digests if every entry is what
    ``recorded`` (listed at ``taken_ns``) says it was; None at the first that
    is not. Files whose stat differs, or was racy, are read and compared by
    digest."""
    if recorded.keys() != found.keys():
        return None
    out: dict[str, Entry] = {}
    for path, now in found.items():
        was = recorded[path]
        if "stat" not in now or "stat" not in was:
            if now != was:
                return None
            out[path] = now
            continue
        if stat_holds(was, now, taken_ns):
            out[path] = was
            continue
        digest = was.get("sha256")
        if digest is None or sha256_of(Path(path)) != digest:
            return None
        out[path] = {"stat": now["stat"], "sha256": digest}
    return out
