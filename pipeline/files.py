"""Writing files so that a failure never leaves half of one behind."""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path


@cache
def default_mode() -> int:
    """rw-rw-rw- less the umask: what open() would have given the file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(
    path: Path, data: bytes | str, *, exclusive: bool = False, mode: int | None = None
) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    With ``exclusive``, refuse (FileExistsError) if ``path`` already exists;
    the check and the link are one step, so two writers cannot both win.
    The file gets ``mode``, by default the permissions open() would give it
    (the temporary file starts private).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), default_mode() if mode is None else mode)
            handle.write(payload)
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
