"""`publish unschedule`: cancel a scheduled issue whose send has not begun.

The issue file is the source of truth, so cancelling is an edit to it, one
the editor sees and git shows: its ``publish_at`` line becomes a comment
saying when it was unscheduled, every other byte of the file kept.

    publish_at: 2027-01-05T07:00:00+01:00
      └─▶ # publish_at: 2027-01-05T07:00:00+01:00  # unscheduled 2026-12-01 16:40 UTC

Taking the leading ``# `` away schedules it again (what is left after the
time is a YAML comment).

    unschedule(settings, name)             under the issue's lock (pipeline.schedule_lock):
      │                                    `publish due` sending it holds it: refused
      ├─ its send in the ledger?           begun or finished: refused
      ├─ comment_out_publish_at(bytes)     the new file (pure); no publish_at: refused
      ├─ written atomically                (subscribers.files.write_atomic)
      └─ its send in the ledger again?     `publish due` read the file before the
                                           write and began the send: the file is put
                                           back as it was, and the refusal says so
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import PublishError
from pipeline.issue import default_slug, find_issue, read_issue_file
from pipeline.schedule_lock import IssueBusy, issue_lock
from pipeline.sendplan import another_issues_slug, relative_path
from subscribers.files import write_atomic

if TYPE_CHECKING:
    from subscribers.ledger import SendRecord

_PUBLISH_AT = re.compile(rb"publish_at[ \t]*:[ \t]*(.*?)[ \t]*")
_FENCE = (b"---", b"...")


@dataclass(frozen=True)
class Unscheduled:
    """What :func:`unschedule` did."""

    path: Path
    slug: str
    written: str
    """The ``publish_at`` the file had, as written."""


@dataclass(frozen=True)
class Rewrite:
    """An issue file with its ``publish_at`` commented out."""

    data: bytes
    written: str


def comment_out_publish_at(data: bytes, now: dt.datetime) -> Rewrite | None:
    """``data`` (an issue file's bytes) with each front-matter ``publish_at``
    line that sets a time turned into a comment stamped with ``now``; every
    other byte, line ends included, as it was. None when there is none."""
    lines = data.splitlines(keepends=True)
    if not lines or lines[0].removeprefix(b"\xef\xbb\xbf").strip() != b"---":
        return None
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC").encode()
    written: list[bytes] = []
    for index in range(1, len(lines)):
        line = lines[index]
        body = line.rstrip(b"\r\n")
        if body.strip() in _FENCE:
            break
        if index == len(lines) - 1:
            return None  # front matter never closed: no key in it can be told from the body
        match = _PUBLISH_AT.fullmatch(body)
        if match is None or not match.group(1) or match.group(1).startswith(b"#"):
            continue  # another key, or "publish_at:" left empty (not set)
        ending = line[len(body) :]
        lines[index] = b"# " + body.rstrip() + b"  # unscheduled " + stamp + ending
        written.append(match.group(1))
    if not written:
        return None
    value = re.split(rb"\s#", written[0], maxsplit=1)[0].strip(b" \t'\"")
    return Rewrite(b"".join(lines), value.decode("utf-8", "replace"))


def unschedule(
    settings: Settings,
    name: str,
    *,
    now: dt.datetime | None = None,
    after_write: Callable[[], None] | None = None,
) -> Unscheduled:
    """Take the issue ``name`` (a file or slug) off the schedule.

    :class:`~pipeline.errors.PublishError` if its send began or finished,
    or it has no ``publish_at``; :class:`~pipeline.errors.IssueError` for
    no such issue.
    ``after_write`` runs between writing the file and reading the ledger
    again: the instant in which `publish due` may begin the send."""
    path = find_issue(name, settings.issues_dir).resolve()
    relative = relative_path(path, settings.root)
    try:
        original = path.read_bytes()
        mode = path.stat().st_mode & 0o7777
    except OSError as exc:
        raise PublishError(f"{relative}: {exc.strerror}") from None
    read = read_issue_file(path)
    slug = read.issue.slug if read.issue is not None else default_slug(path)
    try:
        with issue_lock(settings, path, wait=False):
            return _unschedule(settings, path, relative, slug, original, mode, now, after_write)
    except IssueBusy:
        raise PublishError(
            f"{slug}: `publish due` is sending it right now: it cannot be unscheduled; "
            f"`publish status {slug}` shows where it is"
        ) from None


def _unschedule(
    settings: Settings,
    path: Path,
    relative: Path,
    slug: str,
    original: bytes,
    mode: int,
    now: dt.datetime | None,
    after_write: Callable[[], None] | None,
) -> Unscheduled:
    """The check, the edit and the check again, under the issue's lock."""
    digest = hashlib.sha256(original).hexdigest()
    before = _own_send(settings, slug, relative, digest)
    if before is not None:
        raise PublishError(_already(before))
    change = comment_out_publish_at(original, now or dt.datetime.now(dt.UTC))
    if change is None:
        raise PublishError(f"{relative}: not scheduled (its front matter has no publish_at)")
    _write(path, relative, change.data, mode)
    if after_write is not None:
        after_write()
    began = _own_send(settings, slug, relative, digest)
    if began is not None:
        restored = _put_back(path, change.data, original, mode)
        raise PublishError(
            f"{slug}: `publish due` began sending it at {_when(began.created_at)}, "
            "as the file was being changed: it was not unscheduled "
            + ("(the file is as it was); " if restored else "")
            + f"`publish status {slug}` shows where it is"
        )
    return Unscheduled(relative, slug, change.written)


def _own_send(settings: Settings, slug: str, relative: Path, digest: str) -> SendRecord | None:
    """The send made from this issue file, if one began: by its path, or
    by its slug unless that send is another issue's (``digest``: the
    file's sha256 before it was changed)."""
    from subscribers.db import connect
    from subscribers.ledger import Ledger

    engine = connect(settings.database_url, settings.root)
    try:
        sends: Sequence[SendRecord] = Ledger(engine).sends()
    finally:
        engine.dispose()
    for send in sends:
        if send.issue_path == str(relative):
            return send
        if send.issue_slug == slug and not another_issues_slug(send, relative, digest):
            return send
    return None


def _already(send: SendRecord) -> str:
    if send.status == "done":
        since = f"already sent on {_when(send.finished_at or send.created_at)}"
    else:
        since = f"already sending since {_when(send.created_at)}"
    return (
        f"{send.issue_slug}: {since}: it cannot be unscheduled; "
        f"`publish status {send.issue_slug}` shows where it is"
    )


def _write(path: Path, relative: Path, data: bytes, mode: int) -> None:
    try:
        write_atomic(path, data, mode=mode)
    except OSError as exc:
        raise PublishError(f"{relative}: cannot be written: {exc.strerror}") from None


def _put_back(path: Path, ours: bytes, original: bytes, mode: int) -> bool:
    """The file as it was, unless it changed again since it was written."""
    try:
        if path.read_bytes() != ours:
            return False
        write_atomic(path, original, mode=mode)
    except OSError:
        return False
    return True


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
