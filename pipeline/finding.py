"""One finding of `publish check`, as plain data: where, how bad, what.

Kept apart from the issue files' parsing so that a check said again from
its record (:mod:`pipeline.checking`) needs nothing more to print it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One lint result, printed as ``path:line: severity: message``."""

    path: Path
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"
