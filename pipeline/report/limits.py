"""The limits a sender's rates are held to, and how a rate stands against
them. Pure.

    judge(rate, thresholds) ──▶ Judgement   ok, near (at least half a limit)
                                            or over (at or past it), and
                                            which limit, in words too

SES reviews an account whose bounce rate reaches 5 % or whose complaint
rate reaches 0.1 %; Gmail's rule for bulk senders is a spam rate under
0.3 % (:mod:`subscribers.health` keeps the numbers). "Near" is half a limit
here, for `publish report` and `publish status ISSUE` alike; `publish
subscribers stats` keeps its own warning points for the list's last 30
days (2 % bounces, 0.08 % complaints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from subscribers.health import BOUNCE_LIMIT, COMPLAINT_LIMIT, COMPLAINT_NEVER

Level = Literal["ok", "near", "over"]


@dataclass(frozen=True)
class Threshold:
    name: str
    """``SES review``: what the line is."""
    rate: float
    says: str
    """What happens at it, in a sentence."""


SES_BOUNCE = Threshold(
    "SES review", BOUNCE_LIMIT, "SES reviews an account whose bounce rate reaches 5%"
)
SES_COMPLAINT = Threshold(
    "SES review", COMPLAINT_LIMIT, "SES reviews an account whose complaint rate reaches 0.1%"
)
GMAIL_SPAM = Threshold(
    "Gmail spam rate",
    COMPLAINT_NEVER,
    "Gmail expects bulk senders to keep their spam rate under 0.3%",
)
BOUNCE_THRESHOLDS = (SES_BOUNCE,)
COMPLAINT_THRESHOLDS = (SES_COMPLAINT, GMAIL_SPAM)


@dataclass(frozen=True)
class Judgement:
    """How a rate stands against its limits."""

    level: Level
    threshold: Threshold | None = None
    """The limit it is over (the highest one), or near (the lowest)."""

    def words(self, what: str, rate: float | None) -> str:
        """``bounce rate 6.00% is over the SES review line (5.00%)``; "" when ok."""
        if self.threshold is None or rate is None:
            return ""
        return (
            f"{what} {percent(rate)} is {self.level} the {self.threshold.name} line "
            f"({percent(self.threshold.rate)}): {self.threshold.says}"
        )


def judge(rate: float | None, thresholds: Sequence[Threshold]) -> Judgement:
    """``over`` at or past a limit, ``near`` from half of one, else ``ok``."""
    if rate is None:
        return Judgement("ok")
    over = [t for t in thresholds if rate >= t.rate]
    if over:
        return Judgement("over", max(over, key=lambda t: t.rate))
    near = [t for t in thresholds if rate >= t.rate / 2]
    if near:
        return Judgement("near", min(near, key=lambda t: t.rate))
    return Judgement("ok")


def percent(rate: float | None) -> str:
    """``5.00%``; ``-`` for a rate of nothing."""
    return "-" if rate is None else f"{rate:.2%}"
