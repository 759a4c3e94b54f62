"""Writing files so that a failure never leaves half of one behind.

    write_atomic(path, data)          bytes or text in one call (pages, .eml files)
    atomic_text(path) as out          a text stream, for a writer that streams
      │                               (a CSV export, the local token secret)
      └── atomic_binary(path) as out  what both are made of:

    a temporary file beside ``path``, private from the start
      └─ given ``mode`` ─> written ─> flushed ─> fsync'd
           └─ renamed over ``path`` (os.replace), or with ``exclusive``
              linked into place, which fails if ``path`` exists
    on any error the temporary file is removed, and ``path`` is untouched

Readers see the old file or the new one, never a part; after a crash the
new one is either all there or not at all. An exclusive write is how two
processes agree on who made a file first (the link is one step).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import BinaryIO, TextIO

PRIVATE = 0o600
"""rw------- : for personal data and secrets."""


@cache
def default_mode() -> int:
    """rw-rw-rw- less the umask: what open() would have given the file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_binary(
    path: Path, *, mode: int | None = None, exclusive: bool = False, parents: bool = False
) -> Iterator[BinaryIO]:
    """A binary file written aside and put in place as ``path`` when the
    block ends without error; otherwise removed.

    The file gets ``mode``, by default the permissions open() would give it.
    With ``exclusive``, FileExistsError if ``path`` already exists; with
    ``parents``, missing folders are made first.
    """
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), default_mode() if mode is None else mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails with FileExistsError if path exists
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text(
    path: Path,
    *,
    mode: int | None = None,
    exclusive: bool = False,
    parents: bool = False,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> Iterator[TextIO]:
    """:func:`atomic_binary` as a text stream in ``encoding`` (``newline`` as
    for open(): ``""`` writes line ends as given, which the csv module wants)."""
    with atomic_binary(path, mode=mode, exclusive=exclusive, parents=parents) as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline=newline)
        yield text
        text.flush()
        text.detach()  # the binary file is closed, fsync'd first, by atomic_binary


def write_atomic(
    path: Path, data: bytes | str, *, exclusive: bool = False, mode: int | None = None
) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` with :func:`atomic_binary`,
    making missing folders first."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_binary(path, mode=mode, exclusive=exclusive, parents=True) as handle:
        handle.write(payload)
