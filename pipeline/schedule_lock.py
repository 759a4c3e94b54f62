"""One process at a time between an issue's file and the start of its send.

`publish due` reads a due issue's file and then records its send; `publish
unschedule` checks that no send began and then edits the file. Each holds
the issue's lock across both steps, so that neither can fall between the
other's: without it, a `publish due` that read the file just before the
edit could begin the send just after the check, and the issue the editor
was told is unscheduled would go out.

    with issue_lock(settings, path):            publish due: waits its turn,
        prepare_send(...) ... run()             holds it until the send is in
                                                the ledger (another run may join it)
    with issue_lock(settings, path, wait=False) publish unschedule: IssueBusy
        check the ledger, write the file        at once if a send holds it

The lock is an advisory ``flock`` on a file under the newsletter's
``.cache/schedule/``, named for the issue file's path; the kernel drops it
when its process dies, so a killed `publish due` never leaves it held.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import Settings

LOCKS = Path(".cache") / "schedule"


class IssueBusy(Exception):
    """Another process holds the issue's lock: an internal signal, which
    `publish unschedule` turns into its refusal."""


@contextmanager
def issue_lock(settings: Settings, path: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold the lock of the issue file at ``path``; with ``wait=False``,
    :class:`IssueBusy` at once when another process holds it."""
    folder = settings.root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:32]
    descriptor = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise IssueBusy(str(path)) from None
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock
