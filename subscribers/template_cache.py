"""Compiled Jinja templates kept in a folder between processes.

Jinja compiles a template to Python on first use, which costs more than
filling it in. Kept in a folder under the newsletter's root (keyed by each
template's source, so an edit is never stale), a template is compiled once
per change rather than once per command. The folder is the owner's only,
and one that cannot be read or written only means compiling again.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.bccache


class BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's bytecode cache in ``folder``, owner-only; a damaged entry or
    a folder that cannot be written means compiling again, never an error."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            Path(self.directory).mkdir(mode=0o700, parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass
