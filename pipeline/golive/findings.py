"""What a check found, one line each, with what to do about it.

    Finding("error", "DKIM", "no CNAME at abc._domainkey.example.com",
            "add the three DKIM records `publish setup ses` printed")
      └ printed as
    error: DKIM: no CNAME at abc._domainkey.example.com (fix: add the three ...)

Errors make ``publish doctor`` exit 1; warnings and oks do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning", "ok"]


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    """What was checked: ``SPF``, ``DKIM``, ``SES identity``, ``settings``."""
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level}: {self.subject}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


def error(subject: str, message: str, fix: str = "") -> Finding:
    return Finding("error", subject, message, fix)


def warning(subject: str, message: str, fix: str = "") -> Finding:
    return Finding("warning", subject, message, fix)


def ok(subject: str, message: str) -> Finding:
    return Finding("ok", subject, message)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(item.level == "error" for item in findings)
