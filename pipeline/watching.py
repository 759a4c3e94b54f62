"""`publish check --watch`: the check, then the check again each time a file
it reads changes, in one process, so that its imports, parsers and the
check's record stay warm and an edit's findings come back in the time it
takes to lint that one issue.

    rounds(load, names)     each check, as a :class:`Round`: the first at once,
                            then one after each change to a watched file

Watched: every file and folder the check reads (:func:`pipeline.checking.checked_files`:
issues/, the templates, the code, the issues named), and newsletter.toml.
A folder's own stat changes when an entry in it is added, removed or
renamed, so a new picture, a deleted issue or an editor's save by rename
are all seen. Stats are compared every :data:`INTERVAL`: a few hundred
``stat`` calls, a fraction of a millisecond, where a file system's own
notifications would need a package of their own on each platform.

A stat is taken only once it is older than its racy window
(:func:`pipeline.filestate.racy_window`): a second write within the clock
tick of the first could leave it as it was, and the check would not keep
the findings of a file it could not trust. Stats are taken before a round
reads anything (newsletter.toml, the issues), so that an edit made while it
runs, even one to a file it finds broken, starts the next round.

A change to the code (pipeline/, subscribers/) ends the rounds with one
that asks for a restart: this process holds the old code, and findings it
made would be recorded under the new code's digests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.checking import CheckReport, check_newsletter, checked_files
from pipeline.config import CONFIG_FILE, Settings
from pipeline.filestate import racy_window
from pipeline.inputs import CODE
from subscribers.errors import NewsletterError

INTERVAL = 0.05
"""Seconds between two looks at the watched files' stats."""

Stamp = tuple[int, int, int, int] | None
"""A path's inode, size, modification and change times; None: nothing there."""
Change = tuple[str, Path]
"""``("changed" | "added" | "removed", the path resolved)``."""


@dataclass(frozen=True)
class Round:
    """One check of the watch: its report, or the one-line error that kept
    it from running (a setting being edited, an issue named that is gone);
    ``because``: the changes that started it, each once (none: the first);
    ``restart``: the code changed, so the check must run in a new process."""

    report: CheckReport | None = None
    error: str = ""
    because: tuple[Change, ...] = ()
    restart: bool = False


def rounds(
    load: Callable[[], Settings],
    names: Sequence[str] = (),
    *,
    interval: float = INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Round]:
    """Check the issues ``names`` with the settings ``load()`` gives, then
    again after every change, without end (or until the code changes). An
    error of the first round is raised, as a check without ``--watch``
    would; later ones are rounds, and the watch goes on."""
    first = load()  # no settings at all: nothing to watch
    settings: Settings | None = first
    watched = _watched(first, names)
    before = _settled(watched, sleep)
    because: tuple[Change, ...] = ()
    while True:
        if settings is not None:
            try:
                done = Round(check_newsletter(settings, names), because=because)
            except NewsletterError as error:
                if not because:
                    raise
                done = Round(error=str(error), because=because)
            yield done
        found = _wait(before, sleep, interval)
        if any(_is_code(path) for path in found):
            yield Round(because=changes(before, found, ()), restart=True)
            return
        # Taken before anything is read again: a change from now on, even
        # to a file this round finds broken, starts the next one.
        was, before = before, _settled(watched, sleep)
        try:
            settings = load()
        except NewsletterError as error:  # newsletter.toml half edited: wait for the rest
            settings = None
            yield Round(error=str(error), because=changes(was, found, ()))
            continue
        watched = _watched(settings, names)
        new = _settled([path for path in watched if path not in before], sleep)
        before = {path: before[path] if path in before else new[path] for path in watched}
        because = changes(was, found, watched)


def stamps(paths: Sequence[str]) -> dict[str, Stamp]:
    """Each of ``paths`` as it is now, not following links."""
    found: dict[str, Stamp] = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            found[path] = None
        else:
            found[path] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return found


def changed(before: Mapping[str, Stamp], now: Mapping[str, Stamp]) -> list[str]:
    """The paths whose stamps differ, in order."""
    return [path for path, stamp in before.items() if now.get(path) != stamp]


def changes(
    before: Mapping[str, Stamp], found: Sequence[str], now: Sequence[str]
) -> tuple[Change, ...]:
    """What happened, as the editor would say it: each file of ``found``
    (the paths whose stamps changed) edited or removed, and each file among
    ``now`` (the paths watched since) added; a folder only when no file is
    named (an entry in it came and went)."""
    files = [
        ("removed" if not os.path.lexists(path) else "changed", path)
        for path in found
        if not os.path.isdir(path)
    ]
    files += [("added", path) for path in now if path not in before and not os.path.isdir(path)]
    named = files or [("changed", path) for path in found]
    return tuple(dict.fromkeys((verb, Path(os.path.realpath(path))) for verb, path in named))


def _watched(settings: Settings, names: Sequence[str]) -> list[str]:
    return [str(settings.root / CONFIG_FILE), *checked_files(settings, names)]


def _settled(paths: Sequence[str], sleep: Callable[[float], None]) -> dict[str, Stamp]:
    """The stamps of ``paths`` once none is too fresh to trust."""
    while True:
        taken = time.time_ns()
        found = stamps(paths)
        fresh = [
            max(s[2], s[3]) + racy_window(list(s)) - taken for s in found.values() if s is not None
        ]
        wait = max(fresh, default=-1)
        if wait < 0:  # none too fresh (or none at all)
            return found
        sleep(wait / 1e9 + 0.001)


def _wait(
    before: Mapping[str, Stamp], sleep: Callable[[float], None], interval: float
) -> list[str]:
    """The watched paths that changed, once one has."""
    paths = list(before)
    while True:
        sleep(interval)
        found = changed(before, stamps(paths))
        if found:
            return found


def _is_code(path: str) -> bool:
    return any(Path(path).is_relative_to(folder) for folder in CODE)
